package proxy_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/internal/testutil"
)

// selfRequest sends method path to the public listener with token and
// returns the status and body.
func (a *revocationApp) selfRequest(t *testing.T, method, path, token string) (int, string) {
	t.Helper()
	resp, body := testutil.Do(t, method, a.URL+path, token, nil)
	return resp.StatusCode, body
}

// requireStatus sends method path with token, fails the test unless the
// response status is want, and returns the body.
func (a *revocationApp) requireStatus(t *testing.T, method, path, token string, want int) string {
	t.Helper()
	status, body := a.selfRequest(t, method, path, token)
	if status != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, status, body, want)
	}
	return body
}

func TestSelfServiceDeleteEndsNamedSession(t *testing.T) {
	app := startRevocationApp(t, nil)
	phone := testutil.Token(t, "alice")
	laptop := testutil.Token(t, "alice")
	app.requireStatus(t, http.MethodGet, "/api/me", phone, http.StatusOK)
	app.requireStatus(t, http.MethodGet, "/api/me", laptop, http.StatusOK)

	path := "/.sessiongate/sessions/" + testutil.SessionIDOf(laptop)
	body := app.requireStatus(t, http.MethodDelete, path, phone, http.StatusOK)
	var result struct {
		Revoked   int    `json:"revoked"`
		SessionID string `json:"session_id"`
	}
	testutil.DecodeJSON(t, body, &result)
	if result.Revoked != 1 || result.SessionID != testutil.SessionIDOf(laptop) {
		t.Errorf("DELETE %s = %s, want revoked 1 of that id", path, body)
	}

	body = app.requireStatus(t, http.MethodGet, "/api/me", laptop, http.StatusUnauthorized)
	if !strings.Contains(body, "session_revoked") {
		t.Errorf("laptop after DELETE = %s, want session_revoked", body)
	}
	app.requireStatus(t, http.MethodGet, "/api/me", phone, http.StatusOK)
	app.requireStatus(t, http.MethodDelete, path, phone, http.StatusNotFound)
}

func TestSelfServiceLogoutEndsOnlyCurrentSession(t *testing.T) {
	app := startRevocationApp(t, nil)
	phone := testutil.Token(t, "alice")
	laptop := testutil.Token(t, "alice")
	app.requireStatus(t, http.MethodGet, "/api/me", laptop, http.StatusOK)

	// The token has no session yet; logout creates and ends it in one call.
	body := app.requireStatus(t, http.MethodPost, "/.sessiongate/logout", phone, http.StatusOK)
	var result struct {
		Revoked   int    `json:"revoked"`
		SessionID string `json:"session_id"`
	}
	testutil.DecodeJSON(t, body, &result)
	if result.Revoked != 1 || result.SessionID != testutil.SessionIDOf(phone) {
		t.Errorf("logout = %s, want revoked 1 of the caller's session", body)
	}

	tests := []struct {
		name   string
		method string
		path   string
	}{
		{"backend route", http.MethodGet, "/api/me"},
		{"session list", http.MethodGet, "/.sessiongate/sessions"},
		{"logout again", http.MethodPost, "/.sessiongate/logout"},
		{"logout-all", http.MethodPost, "/.sessiongate/logout-all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := app.selfRequest(t, tt.method, tt.path, phone)
			if status != http.StatusUnauthorized || !strings.Contains(body, "session_revoked") {
				t.Errorf("%s %s with logged-out token = %d %s, want 401 session_revoked", tt.method, tt.path, status, body)
			}
		})
	}
	app.requireStatus(t, http.MethodGet, "/api/me", laptop, http.StatusOK)
}

func TestSelfServiceAcceptsTokenCookie(t *testing.T) {
	app := startRevocationApp(t, map[string]string{"TOKEN_COOKIE": "jwt"})
	token := testutil.Token(t, "alice")

	resp, body := testutil.Do(t, http.MethodGet, app.URL+"/.sessiongate/sessions", "", http.Header{"Cookie": {"jwt=" + token}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /.sessiongate/sessions with cookie = %d %s, want 200", resp.StatusCode, body)
	}
	if !strings.Contains(body, testutil.SessionIDOf(token)) || !strings.Contains(body, `"current": true`) {
		t.Errorf("list = %s, want the cookie's session marked current", body)
	}
}

// Security regression: in REDIS_FAILURE_MODE=open a store failure lets
// requests pass on the token alone, and that must not turn a self-service
// path into a forwarded request.
func TestSelfServiceNeverForwardsWhenStoreIsDown(t *testing.T) {
	app := startRevocationApp(t, map[string]string{"REDIS_FAILURE_MODE": "open", "REDIS_TIMEOUT": "100ms"})
	token := testutil.Token(t, "alice")
	app.Redis.Stop()

	tests := []struct {
		method string
		path   string
	}{
		{http.MethodGet, "/.sessiongate/sessions"},
		{http.MethodDelete, "/.sessiongate/sessions/" + testutil.SessionIDOf("another token")},
		{http.MethodPost, "/.sessiongate/logout"},
		{http.MethodPost, "/.sessiongate/logout-all"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			status, body := app.selfRequest(t, tt.method, tt.path, token)
			if status != http.StatusServiceUnavailable || !strings.Contains(body, "store_unavailable") {
				t.Errorf("status = %d %s, want 503 store_unavailable", status, body)
			}
		})
	}
	if got := app.Backend.Received(); len(got) != 0 {
		t.Errorf("backend received %d requests, want none", len(got))
	}
}
