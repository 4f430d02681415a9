// Package testutil starts the real components that tests run against: a
// redis-server on a free loopback port, a recording HTTP backend, and the
// sessiongate binary. It also mints test tokens.
package testutil

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RequireRedis reports whether a missing redis-server must fail the test
// instead of skipping it: in CI, or when SESSIONGATE_REQUIRE_REDIS=1.
func RequireRedis() bool {
	return os.Getenv("CI") != "" || os.Getenv("SESSIONGATE_REQUIRE_REDIS") == "1"
}

// RedisServerPath returns the redis-server binary, or skips (fails in CI)
// when there is none.
func RedisServerPath(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if RequireRedis() {
			t.Fatalf("redis-server not found on PATH, and CI requires it: %v", err)
		}
		t.Skip("redis-server not installed; install it to run this test (apt-get install redis-server)")
	}
	return path
}

// Redis is a redis-server process owned by one test.
type Redis struct {
	t    testing.TB
	bin  string
	dir  string
	Port int
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// StartRedis starts redis-server on a free loopback port without
// persistence and stops it when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	r := &Redis{t: t, bin: RedisServerPath(t), dir: t.TempDir(), Port: FreePort(t)}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Addr returns host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// URL returns a redis:// URL for database db.
func (r *Redis) URL(db int) string { return fmt.Sprintf("redis://%s/%d", r.Addr(), db) }

// Start starts the server (again) on its port and waits until it responds.
func (r *Redis) Start() {
	r.t.Helper()
	r.log = &bytes.Buffer{}
	r.cmd = exec.Command(r.bin,
		"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir,
		"--logfile", filepath.Join(r.dir, "redis.log"))
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	client := redis.NewClient(&redis.Options{Addr: r.Addr(), DisableIdentity: true, MaxRetries: -1})
	defer client.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := client.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			logText, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			r.t.Fatalf("redis-server on port %d did not respond within 10s: %v\n%s%s", r.Port, err, r.log, logText)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server and waits for it to exit. Calling it twice is safe.
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// Client returns a client on database db, closed when the test ends.
func (r *Redis) Client(db int) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), DB: db, DisableIdentity: true})
	r.t.Cleanup(func() { c.Close() })
	return c
}
