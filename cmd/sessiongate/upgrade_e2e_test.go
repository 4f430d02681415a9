package main_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/testutil"
)

// echoUpgradeBackend accepts any "Upgrade: websocket" request by switching
// protocols and then echoes raw bytes, which is all a proxy handles of a
// WebSocket. It records the identity header of each upgrade.
type echoUpgradeBackend struct {
	URL string

	mu      sync.Mutex
	userIDs []string
}

func startEchoUpgradeBackend(t *testing.T) *echoUpgradeBackend {
	t.Helper()
	b := &echoUpgradeBackend{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		b.mu.Lock()
		b.userIDs = append(b.userIDs, r.Header.Get("X-User-Id"))
		b.mu.Unlock()
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		io.Copy(conn, rw) // echo until the client closes
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	b.URL = "http://" + ln.Addr().String()
	return b
}

func (b *echoUpgradeBackend) seenUserIDs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.userIDs...)
}

// dialUpgrade sends a WebSocket upgrade request to gateURL over a raw TCP
// connection and returns the connection and the status line and headers.
func dialUpgrade(t *testing.T, gateURL, token string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	u, err := url.Parse(gateURL)
	if err != nil {
		t.Fatalf("parse %s: %v", gateURL, err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", u.Host, err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET /ws HTTP/1.1\r\nHost: " + u.Host + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"X-User-Id: spoofed\r\n"
	if token != "" {
		req += "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatalf("write upgrade request: %v", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read upgrade response: %v", err)
	}
	return conn, br, resp
}

func TestWebSocketUpgradePassesThrough(t *testing.T) {
	r := testutil.StartRedis(t)
	backend := startEchoUpgradeBackend(t)
	gate := testutil.StartGate(t, testutil.BaseEnv(backend.URL, r.URL(coreDB)))
	token := testutil.Token(t, "ws-user")

	conn, br, resp := dialUpgrade(t, gate.URL, token)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade status = %d, want 101", resp.StatusCode)
	}
	for _, msg := range []string{"hello", "second frame"} {
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatalf("write %q: %v", msg, err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatalf("read echo of %q: %v", msg, err)
		}
		if string(got) != msg {
			t.Errorf("echo = %q, want %q", got, msg)
		}
	}
	if ids := backend.seenUserIDs(); len(ids) != 1 || ids[0] != "ws-user" {
		t.Errorf("backend saw X-User-Id %q, want exactly [ws-user]", ids)
	}
}

// An upgrade without a token must be rejected before it reaches the
// backend, like any other request.
func TestWebSocketUpgradeNeedsToken(t *testing.T) {
	r := testutil.StartRedis(t)
	backend := startEchoUpgradeBackend(t)
	gate := testutil.StartGate(t, testutil.BaseEnv(backend.URL, r.URL(coreDB)))

	_, _, resp := dialUpgrade(t, gate.URL, "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("upgrade without token status = %d, want 401", resp.StatusCode)
	}
	if ids := backend.seenUserIDs(); len(ids) != 0 {
		t.Errorf("backend saw %d upgrades, want 0", len(ids))
	}
}

func TestMetricsCountRequestsAndSessions(t *testing.T) {
	s := startCoreStack(t, nil)
	token := testutil.Token(t, "metrics-user")
	for range 3 {
		if resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/x", token, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /x status = %d, body %s", resp.StatusCode, body)
		}
	}
	testutil.Do(t, http.MethodGet, s.gate.URL+"/x", "", nil)

	resp, body := testutil.Do(t, http.MethodGet, s.gate.AdminURL+"/metrics", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics status = %d", resp.StatusCode)
	}
	for _, want := range []string{
		`sessiongate_requests_total{outcome="forwarded"} 3`,
		`sessiongate_requests_total{outcome="missing_token"} 1`,
		`sessiongate_session_events_total{event="created"} 1`,
		"sessiongate_store_access_seconds_count 3",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
