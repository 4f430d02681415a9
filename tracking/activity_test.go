package tracking

import (
	"strings"
	"testing"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessiongate/sessiongate/sessions"
)

func newObservedRecorder() (*Recorder, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return NewRecorder(zap.New(core)), logs
}

func activeRequest() sessions.AccessRequest {
	return sessions.AccessRequest{
		SessionID: "sess-1",
		UserID:    "alice",
		Email:     "alice@example.test",
		Client:    sessions.Client{IP: "198.51.100.9", UserAgent: "agent-two", Method: "POST", Path: "/cart"},
	}
}

// fieldsOf returns the context of the only entry with message msg.
func fieldsOf(t *testing.T, logs *observer.ObservedLogs, msg string) map[string]any {
	t.Helper()
	entries := logs.FilterMessage(msg).All()
	if len(entries) != 1 {
		t.Fatalf("log entries %q = %d, want 1; all: %v", msg, len(entries), logs.All())
	}
	return entries[0].ContextMap()
}

func TestRecorderIPChangeWarning(t *testing.T) {
	rec, logs := newObservedRecorder()
	rec.Observe(activeRequest(), sessions.AccessResult{Status: sessions.StatusActive, PreviousIP: "203.0.113.7"})

	entries := logs.FilterMessage("session ip changed").All()
	if len(entries) != 1 {
		t.Fatalf("warnings = %d, want 1; all: %v", len(entries), logs.All())
	}
	if entries[0].Level != zapcore.WarnLevel {
		t.Errorf("level = %v, want warn", entries[0].Level)
	}
	want := map[string]any{"session_id": "sess-1", "user_id": "alice", "old_ip": "203.0.113.7", "new_ip": "198.51.100.9", "revoked": false}
	got := entries[0].ContextMap()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("field %s = %v, want %v", k, got[k], v)
		}
	}
	if n := logs.FilterMessage("session user agent changed").Len(); n != 0 {
		t.Errorf("user agent warnings = %d, want 0 when only the IP changed", n)
	}
}

func TestRecorderUserAgentChangeWarning(t *testing.T) {
	rec, logs := newObservedRecorder()
	rec.Observe(activeRequest(), sessions.AccessResult{Status: sessions.StatusActive, PreviousUserAgent: "agent-one"})

	got := fieldsOf(t, logs, "session user agent changed")
	if got["old_user_agent"] != "agent-one" || got["new_user_agent"] != "agent-two" {
		t.Errorf("user agents = %v -> %v, want agent-one -> agent-two", got["old_user_agent"], got["new_user_agent"])
	}
	if got["session_id"] != "sess-1" || got["user_id"] != "alice" {
		t.Errorf("ids = %v/%v, want sess-1/alice", got["session_id"], got["user_id"])
	}
}

// A bound session revoked because its User-Agent appeared where none was
// stored must still leave a warning for the operator.
func TestRecorderWarnsOnBoundRevocationFromEmptyValue(t *testing.T) {
	rec, logs := newObservedRecorder()
	rec.Observe(activeRequest(), sessions.AccessResult{Status: sessions.StatusRevoked, Reason: sessions.ReasonUserAgentChanged})

	got := fieldsOf(t, logs, "session user agent changed")
	if got["revoked"] != true {
		t.Errorf("revoked = %v, want true", got["revoked"])
	}
	if got["old_user_agent"] != "" || got["new_user_agent"] != "agent-two" {
		t.Errorf("user agents = %q -> %q, want \"\" -> agent-two", got["old_user_agent"], got["new_user_agent"])
	}
}

func TestRecorderActivityLineOnlyWhenStoreAllows(t *testing.T) {
	rec, logs := newObservedRecorder()
	rec.Observe(activeRequest(), sessions.AccessResult{Status: sessions.StatusActive})
	if n := logs.FilterMessage("session activity").Len(); n != 0 {
		t.Fatalf("activity lines = %d without LogActivity, want 0", n)
	}

	rec.Observe(activeRequest(), sessions.AccessResult{Status: sessions.StatusActive, LogActivity: true})
	got := fieldsOf(t, logs, "session activity")
	want := map[string]any{"session_id": "sess-1", "user_id": "alice", "email": "alice@example.test", "ip": "198.51.100.9", "method": "POST", "route": "/cart"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("field %s = %v, want %v", k, got[k], v)
		}
	}
}

func TestRecorderLogsEvictions(t *testing.T) {
	rec, logs := newObservedRecorder()
	rec.Observe(activeRequest(), sessions.AccessResult{Status: sessions.StatusCreated, Evicted: []string{"old-1", "old-2"}})

	entries := logs.FilterMessage("session evicted by per-user limit").All()
	if len(entries) != 2 {
		t.Fatalf("eviction lines = %d, want 2", len(entries))
	}
	for i, id := range []string{"old-1", "old-2"} {
		got := entries[i].ContextMap()
		if got["session_id"] != id || got["new_session_id"] != "sess-1" || got["user_id"] != "alice" {
			t.Errorf("eviction %d = %v, want session_id %s, new_session_id sess-1, user_id alice", i, got, id)
		}
	}
}

func TestTruncateKeepsUTF8Valid(t *testing.T) {
	ua := strings.Repeat("a", maxLoggedUserAgent-1) + "é" + "tail"
	got := truncate(ua, maxLoggedUserAgent)
	if !utf8.ValidString(got) {
		t.Errorf("truncate(...) = %q, not valid UTF-8", got)
	}
	if want := strings.Repeat("a", maxLoggedUserAgent-1) + "..."; got != want {
		t.Errorf("truncate(...) = %q, want %q", got, want)
	}
	if got := truncate("short", maxLoggedUserAgent); got != "short" {
		t.Errorf("truncate(short) = %q, want unchanged", got)
	}
}
