package proxy_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessiongate/sessiongate/configs"
	"github.com/sessiongate/sessiongate/internal/testutil"
	"github.com/sessiongate/sessiongate/proxy"
)

// adminTestToken is the ADMIN_TOKEN of apps started by startRevocationApp.
const adminTestToken = "admin-token-for-proxy-tests"

// revocationApp is an App serving in this process on loopback listeners,
// with its logs recorded.
type revocationApp struct {
	URL      string
	AdminURL string
	Redis    *testutil.Redis
	Backend  *testutil.Backend
	Logs     *observer.ObservedLogs
}

// startRevocationApp starts redis-server, a backend and an App with the
// admin API on, configured like the binary from env over BaseEnv. The App
// stops when the test ends.
func startRevocationApp(t *testing.T, extra map[string]string) *revocationApp {
	t.Helper()
	a := &revocationApp{Redis: testutil.StartRedis(t), Backend: testutil.StartBackend(t)}
	env := testutil.BaseEnv(a.Backend.URL, a.Redis.URL(2))
	env["ADMIN_TOKEN"] = adminTestToken
	for k, v := range extra {
		env[k] = v
	}
	cfg, err := configs.LoadFrom(env)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatalf("configuration %v: %v", env, err)
	}

	core, logs := observer.New(zapcore.DebugLevel)
	a.Logs = logs
	app, err := proxy.NewApp(cfg, zap.New(core))
	if err != nil {
		t.Fatalf("NewApp: %v", err)
	}
	public, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen public: %v", err)
	}
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen admin: %v", err)
	}
	a.URL, a.AdminURL = "http://"+public.Addr().String(), "http://"+admin.Addr().String()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Serve(ctx, public, admin) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve = %v, want nil after shutdown", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Serve did not return within 15s of cancel")
		}
	})

	// Serve marks the App ready after it starts serving; wait for that so
	// that tests see the steady state.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(a.AdminURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return a
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("App not ready within 5s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// adminRequest sends method path to the admin listener with the admin
// token and returns the response and its decoded error body, which is
// empty for a success.
func (a *revocationApp) adminRequest(t *testing.T, method, path string) (*http.Response, testutil.ErrorBody) {
	t.Helper()
	resp, body := testutil.Do(t, method, a.AdminURL+path, adminTestToken, nil)
	var e testutil.ErrorBody
	if resp.StatusCode >= 400 {
		testutil.DecodeJSON(t, body, &e)
	}
	return resp, e
}

// auditEntries returns the "admin action" log entries with the given
// action and result.
func (a *revocationApp) auditEntries(action, result string) []observer.LoggedEntry {
	var out []observer.LoggedEntry
	for _, e := range a.Logs.FilterMessage("admin action").All() {
		fields := e.ContextMap()
		if fields["action"] == action && fields["result"] == result {
			out = append(out, e)
		}
	}
	return out
}

func TestAdminRejectsBadPathsMethodsAndIDs(t *testing.T) {
	app := startRevocationApp(t, nil)
	validID := testutil.SessionIDOf("some token")

	tests := []struct {
		name      string
		method    string
		path      string
		status    int
		code      string
		wantAllow string
		// action and result of the audit line; empty when none is written.
		action, result string
	}{
		{"unknown admin path", http.MethodGet, "/admin/users", http.StatusNotFound, "not_found", "", "unknown", "not_found"},
		{"path below a session", http.MethodDelete, "/admin/users/alice/sessions/" + validID + "/x", http.StatusNotFound, "not_found", "", "unknown", "not_found"},
		{"POST on stats", http.MethodPost, "/admin/stats", http.StatusMethodNotAllowed, "method_not_allowed", "GET", "stats", "method_not_allowed"},
		{"PUT on user sessions", http.MethodPut, "/admin/users/alice/sessions", http.StatusMethodNotAllowed, "method_not_allowed", "GET, DELETE", "unknown", "method_not_allowed"},
		{"GET on one session", http.MethodGet, "/admin/users/alice/sessions/" + validID, http.StatusMethodNotAllowed, "method_not_allowed", "DELETE", "revoke_session", "method_not_allowed"},
		{"method that is a prefix of GET", "GE", "/admin/stats", http.StatusMethodNotAllowed, "method_not_allowed", "GET", "stats", "method_not_allowed"},
		{"malformed session id", http.MethodDelete, "/admin/users/alice/sessions/short", http.StatusBadRequest, "bad_request", "", "revoke_session", "bad_request"},
		{"session id with a bad character", http.MethodDelete, "/admin/users/alice/sessions/" + validID[:21] + "=", http.StatusBadRequest, "bad_request", "", "revoke_session", "bad_request"},
		{"unknown session of user", http.MethodDelete, "/admin/users/alice/sessions/" + validID, http.StatusNotFound, "not_found", "", "revoke_session", "not_found"},
		{"path outside admin API", http.MethodGet, "/nothing-here", http.StatusNotFound, "not_found", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app.Logs.TakeAll()
			resp, e := app.adminRequest(t, tt.method, tt.path)
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.status)
			}
			if e.Error != tt.code {
				t.Errorf("error = %q, want %q", e.Error, tt.code)
			}
			if !strings.HasSuffix(e.Message, ".") || len(e.Message) < 20 {
				t.Errorf("message = %q, want a sentence that says what was wrong", e.Message)
			}
			if got := resp.Header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
			if tt.action != "" && len(app.auditEntries(tt.action, tt.result)) != 1 {
				t.Errorf("audit lines with action %q and result %q = %d, want 1 (all: %v)",
					tt.action, tt.result, len(app.auditEntries(tt.action, tt.result)), app.Logs.All())
			}
		})
	}
}

func TestAdminEscapedUserID(t *testing.T) {
	app := startRevocationApp(t, nil)
	const user = "tenant/alice smith"
	token := testutil.Token(t, user)
	if resp, body := testutil.Do(t, http.MethodGet, app.URL+"/api/me", token, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/me = %d %s, want 200", resp.StatusCode, body)
	}

	resp, body := testutil.Do(t, http.MethodGet, app.AdminURL+"/admin/users/tenant%2Falice%20smith/sessions", adminTestToken, nil)
	var list struct {
		UserID   string `json:"user_id"`
		Sessions []struct {
			ID string `json:"id"`
		} `json:"sessions"`
	}
	testutil.DecodeJSON(t, body, &list)
	if resp.StatusCode != http.StatusOK || list.UserID != user || len(list.Sessions) != 1 {
		t.Fatalf("GET sessions of %q = %d %s, want 200 with its one session", user, resp.StatusCode, body)
	}

	path := "/admin/users/tenant%2Falice%20smith/sessions/" + testutil.SessionIDOf(token)
	if resp, _ := app.adminRequest(t, http.MethodDelete, path); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE %s = %d, want 200", path, resp.StatusCode)
	}
	resp, body = testutil.Do(t, http.MethodGet, app.URL+"/api/me", token, nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "session_revoked") {
		t.Errorf("GET /api/me after admin DELETE = %d %s, want 401 session_revoked", resp.StatusCode, body)
	}
}

func TestAdminAnswers503WhenStoreIsDown(t *testing.T) {
	app := startRevocationApp(t, nil)
	app.Redis.Stop()

	paths := []struct{ method, path, action string }{
		{http.MethodGet, "/admin/stats", "stats"},
		{http.MethodGet, "/admin/users/alice/sessions", "list_sessions"},
		{http.MethodDelete, "/admin/users/alice/sessions", "revoke_user_sessions"},
		{http.MethodDelete, "/admin/users/alice/sessions/" + testutil.SessionIDOf("x"), "revoke_session"},
	}
	for _, p := range paths {
		t.Run(p.method+" "+p.path, func(t *testing.T) {
			app.Logs.TakeAll()
			resp, e := app.adminRequest(t, p.method, p.path)
			if resp.StatusCode != http.StatusServiceUnavailable || e.Error != "store_unavailable" {
				t.Errorf("status = %d %q, want 503 store_unavailable", resp.StatusCode, e.Error)
			}
			failures := app.Logs.FilterMessage("admin action failed").All()
			if len(failures) != 1 {
				t.Fatalf("logged %d admin failures, want 1", len(failures))
			}
			fields := failures[0].ContextMap()
			if failures[0].Level != zapcore.ErrorLevel || fields["action"] != p.action || fields["result"] != "store_unavailable" {
				t.Errorf("failure log = %v %v, want Error with action %q and result store_unavailable", failures[0].Level, fields, p.action)
			}
			if addr, _ := fields["remote_addr"].(string); !strings.HasPrefix(addr, "127.0.0.1:") {
				t.Errorf("remote_addr = %q, want 127.0.0.1:port", addr)
			}
		})
	}
}

func TestAdminHealthEndpointsNeedNoToken(t *testing.T) {
	app := startRevocationApp(t, nil)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		t.Run(path, func(t *testing.T) {
			resp, body := testutil.Do(t, http.MethodGet, app.AdminURL+path, "", nil)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s = %d %s, want 200", path, resp.StatusCode, body)
			}
		})
	}
}
