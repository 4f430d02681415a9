package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/internal/testutil"
	"github.com/sessiongate/sessiongate/sessions"
)

// The user's side of the quick start: the command is built and run as a
// separate process, its banner is parsed, and the printed curl lines are
// sent through net/http exactly as written.

// TestQuickstartMemory checks every printed step against the in-memory
// store, and a clean exit on SIGINT.
func TestQuickstartMemory(t *testing.T) {
	q := startQuickstart(t, nil)
	if !strings.Contains(q.stdout.String(), "session store   memory") {
		t.Errorf("banner does not name the memory store:\n%s", q.stdout)
	}
	walkSteps(t, q, nil)
	q.interruptAndWait(t)
}

// TestQuickstartRedis checks that REDIS_URL switches the command to Redis:
// the banner names Redis and the session key lands in the database of the URL.
func TestQuickstartRedis(t *testing.T) {
	r := testutil.StartRedis(t)
	q := startQuickstart(t, []string{"REDIS_URL=" + r.URL(2)})
	if want := "redis at " + r.URL(2) + " (from REDIS_URL)"; !strings.Contains(q.stdout.String(), want) {
		t.Errorf("banner does not contain %q:\n%s", want, q.stdout)
	}

	client := r.Client(2)
	sessionID := walkSteps(t, q, func(sessionID string) {
		key := findSessionKey(t, client, sessionID)
		if key == "" {
			t.Fatalf("no key sessiongate:*:s:%s in Redis DB 2 after the first request", sessionID)
		}
		ttl, err := client.TTL(context.Background(), key).Result()
		if err != nil {
			t.Fatalf("TTL %s: %v", key, err)
		}
		if ttl < 115*time.Minute || ttl > 2*time.Hour {
			t.Errorf("TTL(%s) = %v, want about 2h (the default idle lifetime)", key, ttl)
		}
	})
	if key := findSessionKey(t, client, sessionID); key != "" {
		t.Errorf("session key %s still in Redis after logout", key)
	}
	q.interruptAndWait(t)
}

// TestQuickstartBusyPort checks that a port in use stops the command with
// status 1 and a message that names the flag to change.
func TestQuickstartBusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer busy.Close()

	cmd := exec.Command(quickstartBinary(t), "-listen", busy.Addr().String(), "-admin", "127.0.0.1:0", "-backend", "127.0.0.1:0")
	cmd.Env = environWithout("REDIS_URL")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = runWithTimeout(cmd, 10*time.Second)
	if cmd.ProcessState == nil {
		t.Fatalf("run quickstart: %v", err)
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit status = %d (%v), want 1", code, err)
	}
	if !strings.Contains(stderr.String(), "-listen") {
		t.Errorf("stderr does not name the -listen flag:\n%s", stderr.String())
	}
}

// backendEcho is the JSON body that the sample backend returns.
type backendEcho struct {
	UserID       string   `json:"x_user_id"`
	UserEmail    string   `json:"x_user_email"`
	SessionID    string   `json:"x_session_id"`
	UserIDValues []string `json:"x_user_id_values"`
	SpoofArrived bool     `json:"spoofed_x_user_id_arrived"`
}

// walkSteps runs the five printed steps in order and checks each response.
// afterFirst, when not nil, runs after the first request with the session
// id the backend received. It returns that session id.
func walkSteps(t *testing.T, q *quickstart, afterFirst func(sessionID string)) string {
	t.Helper()
	want := []struct{ method, path string }{
		{http.MethodGet, "/hello"},
		{http.MethodGet, "/hello"},
		{http.MethodGet, "/.sessiongate/sessions"},
		{http.MethodPost, "/.sessiongate/logout"},
		{http.MethodGet, "/hello"},
	}
	if len(q.steps) != len(want) {
		t.Fatalf("banner has %d curl lines, want %d:\n%s", len(q.steps), len(want), q.stdout)
	}
	for i, w := range want {
		s := q.steps[i]
		if s.method != w.method || !strings.HasSuffix(s.url, w.path) {
			t.Fatalf("step %d = %s %s, want %s …%s (line %q)", i+1, s.method, s.url, w.method, w.path, s.line)
		}
	}
	wantSessionID := sessions.SessionID(sessions.TokenDigest(q.token))

	// 1. The request reaches the backend with the verified identity.
	status, _, body := q.steps[0].do(t)
	if status != http.StatusOK {
		t.Fatalf("step 1: status = %d, want 200; body %s", status, body)
	}
	first := decode[backendEcho](t, "step 1", body)
	if first.UserID != "demo-user" {
		t.Errorf("step 1: x_user_id = %q, want demo-user", first.UserID)
	}
	if first.UserEmail != "demo-user@example.com" {
		t.Errorf("step 1: x_user_email = %q, want demo-user@example.com", first.UserEmail)
	}
	if first.SessionID != wantSessionID {
		t.Errorf("step 1: x_session_id = %q, want %q (derived from the token)", first.SessionID, wantSessionID)
	}
	if afterFirst != nil {
		afterFirst(first.SessionID)
	}

	// 2. Security regression: a client-sent X-User-Id must never reach the
	// backend, or any client could act as any user.
	if got := q.steps[1].header.Get("X-User-Id"); got == "" {
		t.Fatalf("step 2 sends no X-User-Id header: %q", q.steps[1].line)
	}
	status, _, body = q.steps[1].do(t)
	if status != http.StatusOK {
		t.Fatalf("step 2: status = %d, want 200; body %s", status, body)
	}
	spoofed := decode[backendEcho](t, "step 2", body)
	if !slices.Equal(spoofed.UserIDValues, []string{"demo-user"}) {
		t.Errorf("step 2: x_user_id_values = %q, want [demo-user]", spoofed.UserIDValues)
	}
	if spoofed.SpoofArrived {
		t.Errorf("step 2: spoofed_x_user_id_arrived = true, want false")
	}
	if spoofed.SessionID != wantSessionID {
		t.Errorf("step 2: x_session_id = %q, want %q", spoofed.SessionID, wantSessionID)
	}

	// 3. The session list contains the current session.
	status, _, body = q.steps[2].do(t)
	if status != http.StatusOK {
		t.Fatalf("step 3: status = %d, want 200; body %s", status, body)
	}
	list := decode[struct {
		UserID   string `json:"user_id"`
		Sessions []struct {
			ID      string `json:"id"`
			Current bool   `json:"current"`
		} `json:"sessions"`
	}](t, "step 3", body)
	if list.UserID != "demo-user" {
		t.Errorf("step 3: user_id = %q, want demo-user", list.UserID)
	}
	found := false
	for _, s := range list.Sessions {
		if s.ID == wantSessionID {
			found = true
			if !s.Current {
				t.Errorf("step 3: session %s has current = false, want true", s.ID)
			}
		}
	}
	if !found {
		t.Errorf("step 3: sessions %s do not contain %s", body, wantSessionID)
	}

	// 4. Logout revokes the current session.
	status, _, body = q.steps[3].do(t)
	if status != http.StatusOK {
		t.Fatalf("step 4: status = %d, want 200; body %s", status, body)
	}
	logout := decode[struct {
		Revoked   int    `json:"revoked"`
		SessionID string `json:"session_id"`
	}](t, "step 4", body)
	if logout.Revoked != 1 || logout.SessionID != wantSessionID {
		t.Errorf("step 4: revoked %d session %q, want 1 session %q", logout.Revoked, logout.SessionID, wantSessionID)
	}

	// 5. Security regression: the token of a logged-out session must stay
	// rejected, or logout would not end its use.
	status, header, body := q.steps[4].do(t)
	if status != http.StatusUnauthorized {
		t.Fatalf("step 5: status = %d, want 401; body %s", status, body)
	}
	rejection := decode[struct {
		Error string `json:"error"`
	}](t, "step 5", body)
	if rejection.Error != "session_revoked" {
		t.Errorf("step 5: error = %q, want session_revoked", rejection.Error)
	}
	if got := header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
		t.Errorf("step 5: WWW-Authenticate = %q, want it to contain error=\"invalid_token\"", got)
	}
	if !q.steps[4].showStatus {
		t.Errorf("step 5 does not pass -i, so a user would not see the 401: %q", q.steps[4].line)
	}
	return wantSessionID
}

// quickstart is a running quick-start process and its parsed banner.
type quickstart struct {
	cmd      *exec.Cmd
	stdout   *testutil.SyncBuffer
	stderr   *testutil.SyncBuffer
	done     chan struct{}
	exitCode int

	token string
	steps []curlStep
}

// startQuickstart runs the command on free loopback ports with the
// environment of the test, less REDIS_URL, plus extraEnv. It waits for the
// whole banner and stops the process when the test ends.
func startQuickstart(t *testing.T, extraEnv []string) *quickstart {
	t.Helper()
	q := &quickstart{stdout: &testutil.SyncBuffer{}, stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
	q.cmd = exec.Command(quickstartBinary(t), "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-backend", ":0")
	q.cmd.Env = append(environWithout("REDIS_URL"), extraEnv...)
	q.cmd.Stdout, q.cmd.Stderr = q.stdout, q.stderr
	if err := q.cmd.Start(); err != nil {
		t.Fatalf("start quickstart: %v", err)
	}
	go func() {
		_ = q.cmd.Wait()
		q.exitCode = q.cmd.ProcessState.ExitCode()
		close(q.done)
	}()
	t.Cleanup(func() {
		select {
		case <-q.done:
		default:
			_ = q.cmd.Process.Kill()
			<-q.done
		}
		if t.Failed() {
			t.Logf("quickstart stdout:\n%s\nquickstart stderr:\n%s", q.stdout, q.stderr)
		}
	})

	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(q.stdout.String(), "Press Ctrl-C to stop.") {
		select {
		case <-q.done:
			t.Fatalf("quickstart exited with status %d before printing its banner", q.exitCode)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("quickstart did not print its whole banner within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}

	for line := range strings.Lines(q.stdout.String()) {
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "TOKEN="):
			q.token = strings.TrimPrefix(line, "TOKEN=")
		case strings.HasPrefix(line, "curl "):
			q.steps = append(q.steps, parseCurl(t, line))
		}
	}
	if q.token == "" {
		t.Fatal("banner has no TOKEN= line")
	}
	for i := range q.steps {
		q.steps[i].token = q.token
	}
	if !strings.Contains(q.stdout.String(), "not part of the production path") {
		t.Error("banner does not say that the sample backend and token are not part of the production path")
	}
	return q
}

// interruptAndWait sends SIGINT, as Ctrl-C does, and checks that the
// process exits with status 0 within 5 seconds.
func (q *quickstart) interruptAndWait(t *testing.T) {
	t.Helper()
	if err := q.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatalf("send SIGINT: %v", err)
	}
	select {
	case <-q.done:
	case <-time.After(5 * time.Second):
		t.Fatal("quickstart did not exit within 5s of SIGINT")
	}
	if q.exitCode != 0 {
		t.Errorf("exit status after SIGINT = %d, want 0", q.exitCode)
	}
	if !strings.Contains(q.stdout.String(), "quickstart stopped") {
		t.Error(`stdout does not end with "quickstart stopped"`)
	}
}

// curlStep is one printed curl line as an HTTP request.
type curlStep struct {
	line       string
	method     string
	url        string
	header     http.Header
	showStatus bool // -i
	token      string
}

// parseCurl reads the curl options that the banner uses: -s, -i, -X METHOD,
// -H "Name: value" and one URL. $TOKEN stays in the header values until do
// expands it, as the shell would. Any other option fails the test, so the
// banner cannot print a command that this test does not understand.
func parseCurl(t *testing.T, line string) curlStep {
	t.Helper()
	words := splitShellWords(t, line)
	s := curlStep{line: line, method: http.MethodGet, header: http.Header{}}
	for i := 1; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "-s":
		case w == "-i":
			s.showStatus = true
		case (w == "-X" || w == "-H") && i+1 < len(words):
			i++
			if w == "-X" {
				s.method = words[i]
				continue
			}
			name, value, ok := strings.Cut(words[i], ":")
			if !ok {
				t.Fatalf("curl header %q has no colon in %q", words[i], line)
			}
			s.header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		case strings.HasPrefix(w, "http://") && s.url == "":
			s.url = w
		default:
			t.Fatalf("unexpected curl word %q in %q", w, line)
		}
	}
	if s.url == "" {
		t.Fatalf("no URL in %q", line)
	}
	return s
}

// splitShellWords splits line as a POSIX shell would for the subset the
// banner uses: words separated by spaces, double-quoted strings, and no
// escapes or single quotes.
func splitShellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var word strings.Builder
	inWord, quoted := false, false
	for _, c := range line {
		switch {
		case c == '"':
			quoted = !quoted
			inWord = true
		case c == ' ' && !quoted:
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case c == '\\' || c == '\'':
			t.Fatalf("unsupported shell quoting %q in %q", c, line)
		default:
			word.WriteRune(c)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unterminated double quote in %q", line)
	}
	if inWord {
		words = append(words, word.String())
	}
	return words
}

// do sends the step's request with $TOKEN expanded and returns the status,
// the headers and the body.
func (s curlStep) do(t *testing.T) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(s.method, s.url, nil)
	if err != nil {
		t.Fatalf("new request for %q: %v", s.line, err)
	}
	for name, values := range s.header {
		for _, v := range values {
			if strings.Contains(strings.ReplaceAll(v, "$TOKEN", ""), "$") {
				t.Fatalf("header %s: %q uses a shell variable other than $TOKEN", name, v)
			}
			req.Header.Add(name, strings.ReplaceAll(v, "$TOKEN", s.token))
		}
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", s.line, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: read body: %v", s.line, err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

func decode[T any](t *testing.T, step, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("%s: body is not the expected JSON: %v\n%s", step, err, body)
	}
	return v
}

// findSessionKey returns the Redis key of sessionID, or "" when there is
// none. Keys look like sessiongate:{user tag}:s:ID.
func findSessionKey(t *testing.T, client *redis.Client, sessionID string) string {
	t.Helper()
	keys, err := client.Keys(context.Background(), "sessiongate:*:s:"+sessionID).Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	if len(keys) > 1 {
		t.Fatalf("KEYS found %d session keys for %s, want 1: %q", len(keys), sessionID, keys)
	}
	if len(keys) == 0 {
		return ""
	}
	return keys[0]
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// quickstartBinary builds the command once per test process, as go run
// would, and returns its path.
func quickstartBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sessiongate-quickstart-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "quickstart")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build quickstart: %v", buildErr)
	}
	return binPath
}

// environWithout returns the process environment less the named variables.
func environWithout(names ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(names, name) {
			env = append(env, kv)
		}
	}
	return env
}

// runWithTimeout runs cmd and kills it when it runs longer than timeout.
func runWithTimeout(cmd *exec.Cmd, timeout time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	timer := time.AfterFunc(timeout, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	return cmd.Wait()
}
