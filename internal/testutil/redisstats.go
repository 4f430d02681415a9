package testutil

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// CommandCalls returns the "calls" counter of every command in INFO
// commandstats, keyed by the lowercase command name ("evalsha",
// "config|resetstat"). Redis counts commands that scripts run through
// redis.call here too, so these counters alone cannot tell round trips
// from work done inside one script; MonitorClients can.
func CommandCalls(t testing.TB, c *redis.Client) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	text, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	calls := map[string]int64{}
	for _, line := range strings.Split(text, "\n") {
		name, fields, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, field := range strings.Split(fields, ",") {
			if v, ok := strings.CutPrefix(field, "calls="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Fatalf("INFO commandstats line %q: %v", line, err)
				}
				calls[strings.TrimPrefix(name, "cmdstat_")] = n
			}
		}
	}
	return calls
}

// Monitor is a MONITOR connection that records the commands Redis
// receives from clients. Commands that scripts run ("[db lua]" in MONITOR
// output) are left out, so each kept line is one command on the wire.
type Monitor struct {
	conn net.Conn

	mu    sync.Mutex
	lines []string
	err   error
}

// StartMonitor opens a MONITOR connection to the Redis at addr and closes
// it when the test ends.
func StartMonitor(t testing.TB, addr string) *Monitor {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial redis for MONITOR: %v", err)
	}
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		conn.Close()
		t.Fatalf("send MONITOR: %v", err)
	}
	reader := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	first, err := reader.ReadString('\n')
	if err != nil || strings.TrimSpace(first) != "+OK" {
		conn.Close()
		t.Fatalf("MONITOR reply = %q, %v; want +OK", first, err)
	}
	_ = conn.SetReadDeadline(time.Time{})

	m := &Monitor{conn: conn}
	go m.read(reader)
	t.Cleanup(func() { conn.Close() })
	return m
}

func (m *Monitor) read(reader *bufio.Reader) {
	for {
		line, err := reader.ReadString('\n')
		if err != nil {
			m.mu.Lock()
			m.err = err
			m.mu.Unlock()
			return
		}
		line = strings.TrimSpace(strings.TrimPrefix(line, "+"))
		// A line reads: 1700000000.123456 [2 127.0.0.1:5555] "evalsha" ...
		_, rest, _ := strings.Cut(line, " [")
		source, _, _ := strings.Cut(rest, "]")
		if strings.HasSuffix(source, " lua") {
			continue
		}
		m.mu.Lock()
		m.lines = append(m.lines, line)
		m.mu.Unlock()
	}
}

// Lines returns the client commands recorded so far.
func (m *Monitor) Lines() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.lines...)
}

// WaitFor waits up to timeout until a recorded line contains substr and
// fails the test otherwise. Send a marker command such as ECHO and wait
// for it to know that every command sent before it has been recorded.
func (m *Monitor) WaitFor(t testing.TB, substr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, line := range m.Lines() {
			if strings.Contains(line, substr) {
				return
			}
		}
		if time.Now().After(deadline) {
			m.mu.Lock()
			err := m.err
			m.mu.Unlock()
			t.Fatalf("MONITOR recorded no line with %q within %v (read error: %v)", substr, timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
