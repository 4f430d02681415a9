package testutil

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds the sessiongate command once per test process and returns
// its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sessiongate-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "sessiongate")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/sessiongate")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build sessiongate: %v", buildErr)
	}
	return binPath
}

// SyncBuffer is a bytes.Buffer safe for one writer and concurrent readers,
// for the output of a process under test.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Gate is a running sessiongate process.
type Gate struct {
	URL      string // public listener
	AdminURL string
	cmd      *exec.Cmd
	output   *SyncBuffer
	done     chan struct{}
	exitCode int
}

// BaseEnv returns the environment most tests start from: HS256 with
// Secret, the given backend and Redis, short timeouts, and debug logs.
func BaseEnv(backendURL, redisURL string) map[string]string {
	return map[string]string{
		"UPSTREAM_URL":     backendURL,
		"REDIS_URL":        redisURL,
		"JWT_SECRET":       Secret,
		"LOG_LEVEL":        "debug",
		"SHUTDOWN_TIMEOUT": "10s",
	}
}

// StartGate runs the binary with env plus free LISTEN_ADDR and ADMIN_ADDR,
// waits until /healthz returns 200, and sends SIGTERM when the test ends.
func StartGate(t testing.TB, env map[string]string) *Gate {
	t.Helper()
	g := &Gate{output: &SyncBuffer{}, done: make(chan struct{})}
	publicAddr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	adminAddr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	g.URL, g.AdminURL = "http://"+publicAddr, "http://"+adminAddr

	g.cmd = exec.Command(Binary(t))
	g.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LISTEN_ADDR=" + publicAddr, "ADMIN_ADDR=" + adminAddr}
	for k, v := range env {
		g.cmd.Env = append(g.cmd.Env, k+"="+v)
	}
	g.cmd.Stdout, g.cmd.Stderr = g.output, g.output
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("start sessiongate: %v", err)
	}
	go func() {
		_ = g.cmd.Wait()
		g.exitCode = g.cmd.ProcessState.ExitCode()
		close(g.done)
	}()
	t.Cleanup(func() {
		g.Signal(syscall.SIGTERM)
		select {
		case <-g.done:
		case <-time.After(15 * time.Second):
			_ = g.cmd.Process.Kill()
			<-g.done
		}
		if t.Failed() {
			t.Logf("sessiongate output:\n%s", g.Output())
		}
	})

	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(g.AdminURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g
			}
		}
		select {
		case <-g.done:
			t.Fatalf("sessiongate exited with status %d before it was healthy:\n%s", g.exitCode, g.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessiongate not healthy within 15s:\n%s", g.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Signal sends sig to the process if it still runs.
func (g *Gate) Signal(sig os.Signal) {
	select {
	case <-g.done:
	default:
		_ = g.cmd.Process.Signal(sig)
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// status; ok is false on timeout.
func (g *Gate) Wait(timeout time.Duration) (code int, ok bool) {
	select {
	case <-g.done:
		return g.exitCode, true
	case <-time.After(timeout):
		return 0, false
	}
}

// Output returns everything the process wrote so far.
func (g *Gate) Output() string { return g.output.String() }

// CountLog counts log lines that contain every one of parts.
func (g *Gate) CountLog(parts ...string) int {
	n := 0
	for _, line := range strings.Split(g.Output(), "\n") {
		all := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				all = false
				break
			}
		}
		if all && line != "" {
			n++
		}
	}
	return n
}

// RunOnce runs the binary with args and env (no listeners) and returns its
// exit status and combined output.
func RunOnce(t testing.TB, env map[string]string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("run sessiongate %v: %v", args, err)
	}
	return 0, string(out)
}

// Do sends a request with an optional bearer token and extra headers and
// returns the response with its body read.
func Do(t testing.TB, method, url, token string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for k, vs := range header {
		// Set keys as given, not canonicalized, so tests can send any spelling.
		req.Header[k] = append(req.Header[k], vs...)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	return resp, body.String()
}
