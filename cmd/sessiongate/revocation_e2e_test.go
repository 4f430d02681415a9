package main_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/internal/testutil"
)

// revocationAdminToken is the ADMIN_TOKEN of the gates in this file.
const revocationAdminToken = "admin-token-for-revocation-tests"

// revocationDB is the Redis database the gates use, the documented default
// REDIS_SESSION_DB.
const revocationDB = 2

// revocationSetup is one redis-server, one recording backend and the
// environment of a gate that uses them.
type revocationSetup struct {
	redis   *testutil.Redis
	backend *testutil.Backend
	env     map[string]string
}

// newRevocationSetup starts redis-server and a backend and returns the
// environment of a gate with the admin API on and /api/logout as a backend
// logout route. extra overrides or adds variables.
func newRevocationSetup(t *testing.T, extra map[string]string) *revocationSetup {
	t.Helper()
	s := &revocationSetup{redis: testutil.StartRedis(t), backend: testutil.StartBackend(t)}
	s.env = testutil.BaseEnv(s.backend.URL, s.redis.URL(revocationDB))
	s.env["ADMIN_TOKEN"] = revocationAdminToken
	s.env["LOGOUT_PATHS"] = "/api/logout"
	for k, v := range extra {
		s.env[k] = v
	}
	return s
}

// backendPaths returns the paths the backend received, in order.
func (s *revocationSetup) backendPaths() []string {
	var paths []string
	for _, r := range s.backend.Received() {
		paths = append(paths, r.Method+" "+r.Path)
	}
	return paths
}

// userKeys returns every key of user below the default prefix in the
// gate's database.
func (s *revocationSetup) userKeys(t *testing.T, user string) []string {
	t.Helper()
	keys, err := s.redis.Client(revocationDB).Keys(context.Background(), "sessiongate:{"+user+"}:*").Result()
	if err != nil {
		t.Fatalf("KEYS of user %s: %v", user, err)
	}
	return keys
}

// expectStatus sends a request, fails the test unless the response status
// is want, and returns the body.
func expectStatus(t *testing.T, method, url, token string, want int) string {
	t.Helper()
	resp, body := testutil.Do(t, method, url, token, nil)
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, url, resp.StatusCode, body, want)
	}
	return body
}

// expectRejection sends a request and fails the test unless the response
// has the given status, JSON error code and a message.
func expectRejection(t *testing.T, method, url, token string, status int, code string) testutil.ErrorBody {
	t.Helper()
	body := expectStatus(t, method, url, token, status)
	var e testutil.ErrorBody
	testutil.DecodeJSON(t, body, &e)
	if e.Error != code {
		t.Errorf("%s %s: error = %q, want %q (body %s)", method, url, e.Error, code, body)
	}
	if e.Message == "" {
		t.Errorf("%s %s: message is empty, want a sentence (body %s)", method, url, body)
	}
	return e
}

// selfList is the body of GET /.sessiongate/sessions.
type selfList struct {
	UserID   string `json:"user_id"`
	Sessions []struct {
		ID           string    `json:"id"`
		UserID       string    `json:"user_id"`
		CreatedAt    time.Time `json:"created_at"`
		LastActivity time.Time `json:"last_activity"`
		IP           string    `json:"ip"`
		UserAgent    string    `json:"user_agent"`
		Current      bool      `json:"current"`
	} `json:"sessions"`
}

// Security regression: a backend logout route must end the token's use, not
// only the backend's own cookie or state.
func TestLogoutPathRevokesSessionAndForwardsOnce(t *testing.T) {
	t.Parallel()
	s := newRevocationSetup(t, nil)
	gate := testutil.StartGate(t, s.env)
	token := testutil.Token(t, "alice")

	expectStatus(t, http.MethodGet, gate.URL+"/api/me", token, http.StatusOK)
	expectStatus(t, http.MethodPost, gate.URL+"/api/logout", token, http.StatusOK)

	var logouts int
	for _, p := range s.backendPaths() {
		if p == "POST /api/logout" {
			logouts++
		}
	}
	if logouts != 1 {
		t.Errorf("backend received POST /api/logout %d times, want 1 (all: %v)", logouts, s.backendPaths())
	}

	s.backend.Reset()
	expectRejection(t, http.MethodGet, gate.URL+"/api/me", token, http.StatusUnauthorized, "session_revoked")
	expectRejection(t, http.MethodPost, gate.URL+"/api/logout", token, http.StatusUnauthorized, "session_revoked")
	if got := s.backendPaths(); len(got) != 0 {
		t.Errorf("backend received %v after logout, want nothing", got)
	}
}

// Security regression: "log out all my devices" must also stop tokens of
// that user that were issued earlier but never used yet.
func TestLogoutAllRejectsEarlierTokens(t *testing.T) {
	t.Parallel()
	s := newRevocationSetup(t, nil)
	gate := testutil.StartGate(t, s.env)

	phone := testutil.Token(t, "alice")
	laptop := testutil.Token(t, "alice")
	// Minted a second early so its iat lies before the call whatever the
	// millisecond of the call.
	unused := testutil.TokenIssuedAt(t, "alice", time.Now().Add(-time.Second), time.Hour)
	bob := testutil.Token(t, "bob")
	for _, token := range []string{phone, laptop, bob} {
		expectStatus(t, http.MethodGet, gate.URL+"/api/me", token, http.StatusOK)
	}

	body := expectStatus(t, http.MethodPost, gate.URL+"/.sessiongate/logout-all", phone, http.StatusOK)
	var result struct {
		Revoked int    `json:"revoked"`
		UserID  string `json:"user_id"`
	}
	testutil.DecodeJSON(t, body, &result)
	if result.Revoked != 2 || result.UserID != "alice" {
		t.Errorf("logout-all = %s, want revoked 2 of alice", body)
	}

	tests := []struct {
		name  string
		token string
	}{
		{"caller's session", phone},
		{"other device's session", laptop},
		{"earlier token never seen", unused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectRejection(t, http.MethodGet, gate.URL+"/api/me", tt.token, http.StatusUnauthorized, "session_revoked")
		})
	}
	expectStatus(t, http.MethodGet, gate.URL+"/api/me", bob, http.StatusOK)

	testutil.SleepToNextSecond()
	later := testutil.Token(t, "alice")
	expectStatus(t, http.MethodGet, gate.URL+"/api/me", later, http.StatusOK)
}

func TestSessionListMarksCallersSession(t *testing.T) {
	t.Parallel()
	s := newRevocationSetup(t, nil)
	gate := testutil.StartGate(t, s.env)

	phone := testutil.Token(t, "alice")
	laptop := testutil.Token(t, "alice")
	bob := testutil.Token(t, "bob")
	testutil.Do(t, http.MethodGet, gate.URL+"/api/me", phone, http.Header{"User-Agent": {"phone-app/1.0"}})
	testutil.Do(t, http.MethodGet, gate.URL+"/api/me", laptop, http.Header{"User-Agent": {"laptop-browser/2.0"}})
	expectStatus(t, http.MethodGet, gate.URL+"/api/me", bob, http.StatusOK)
	s.backend.Reset()

	resp, body := testutil.Do(t, http.MethodGet, gate.URL+"/.sessiongate/sessions", phone, http.Header{"User-Agent": {"phone-app/1.0"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /.sessiongate/sessions = %d %s, want 200", resp.StatusCode, body)
	}
	var list selfList
	testutil.DecodeJSON(t, body, &list)
	if list.UserID != "alice" {
		t.Errorf("user_id = %q, want alice", list.UserID)
	}
	if len(list.Sessions) != 2 {
		t.Fatalf("listed %d sessions, want alice's 2: %s", len(list.Sessions), body)
	}

	want := map[string]struct {
		userAgent string
		current   bool
	}{
		testutil.SessionIDOf(phone):  {"phone-app/1.0", true},
		testutil.SessionIDOf(laptop): {"laptop-browser/2.0", false},
	}
	for _, got := range list.Sessions {
		w, ok := want[got.ID]
		if !ok {
			t.Errorf("listed session %s, which is not alice's", got.ID)
			continue
		}
		if got.Current != w.current {
			t.Errorf("session %s current = %v, want %v", got.ID, got.Current, w.current)
		}
		if got.UserAgent != w.userAgent {
			t.Errorf("session %s user_agent = %q, want %q", got.ID, got.UserAgent, w.userAgent)
		}
		if got.IP != "127.0.0.1" {
			t.Errorf("session %s ip = %q, want 127.0.0.1", got.ID, got.IP)
		}
		if got.CreatedAt.IsZero() || got.LastActivity.IsZero() {
			t.Errorf("session %s created_at = %v, last_activity = %v, want both set", got.ID, got.CreatedAt, got.LastActivity)
		}
	}
	if got := s.backendPaths(); len(got) != 0 {
		t.Errorf("backend received %v, want nothing from /.sessiongate/", got)
	}
}

// Security regression: a session id must not let one user see or end
// another user's session, nor learn that the id exists.
func TestOtherUsersSessionIsNotFound(t *testing.T) {
	t.Parallel()
	s := newRevocationSetup(t, nil)
	gate := testutil.StartGate(t, s.env)

	alice := testutil.Token(t, "alice")
	bob := testutil.Token(t, "bob")
	expectStatus(t, http.MethodGet, gate.URL+"/api/me", alice, http.StatusOK)
	expectStatus(t, http.MethodGet, gate.URL+"/api/me", bob, http.StatusOK)
	bobSession := testutil.SessionIDOf(bob)
	unknown := testutil.SessionIDOf("a token that was never sent")

	_, othersBody := testutil.Do(t, http.MethodDelete, gate.URL+"/.sessiongate/sessions/"+bobSession, alice, nil)
	expectRejection(t, http.MethodDelete, gate.URL+"/.sessiongate/sessions/"+bobSession, alice, http.StatusNotFound, "not_found")
	_, unknownBody := testutil.Do(t, http.MethodDelete, gate.URL+"/.sessiongate/sessions/"+unknown, alice, nil)
	if othersBody != unknownBody {
		t.Errorf("DELETE of another user's session answered %q, unknown id %q; want the same body", othersBody, unknownBody)
	}

	var list selfList
	testutil.DecodeJSON(t, expectStatus(t, http.MethodGet, gate.URL+"/.sessiongate/sessions", alice, http.StatusOK), &list)
	for _, sess := range list.Sessions {
		if sess.ID == bobSession || sess.UserID != "alice" {
			t.Errorf("alice's list contains session %s of %q", sess.ID, sess.UserID)
		}
	}

	expectStatus(t, http.MethodGet, gate.URL+"/api/me", bob, http.StatusOK)
	if keys := s.userKeys(t, "bob"); len(keys) == 0 || strings.Contains(strings.Join(keys, " "), ":r:") {
		t.Errorf("bob's keys = %v, want his live session and no revocation marker", keys)
	}
}

func TestSelfServiceRejectsBadRequests(t *testing.T) {
	t.Parallel()
	s := newRevocationSetup(t, nil)
	gate := testutil.StartGate(t, s.env)
	token := testutil.Token(t, "alice")
	expectStatus(t, http.MethodGet, gate.URL+"/api/me", token, http.StatusOK)
	s.backend.Reset()

	tests := []struct {
		name      string
		method    string
		path      string
		token     string
		status    int
		code      string
		wantAllow string
	}{
		{"malformed session id", http.MethodDelete, "/.sessiongate/sessions/not-an-id", token, http.StatusBadRequest, "bad_request", ""},
		{"empty session id", http.MethodDelete, "/.sessiongate/sessions/", token, http.StatusBadRequest, "bad_request", ""},
		{"POST on session list", http.MethodPost, "/.sessiongate/sessions", token, http.StatusMethodNotAllowed, "method_not_allowed", "GET"},
		{"GET on logout", http.MethodGet, "/.sessiongate/logout", token, http.StatusMethodNotAllowed, "method_not_allowed", "POST"},
		{"DELETE on logout-all", http.MethodDelete, "/.sessiongate/logout-all", token, http.StatusMethodNotAllowed, "method_not_allowed", "POST"},
		{"GET on one session", http.MethodGet, "/.sessiongate/sessions/" + testutil.SessionIDOf(token), token, http.StatusMethodNotAllowed, "method_not_allowed", "DELETE"},
		{"unknown endpoint", http.MethodGet, "/.sessiongate/whoami", token, http.StatusNotFound, "not_found", ""},
		{"prefix without endpoint", http.MethodGet, "/.sessiongate/", token, http.StatusNotFound, "not_found", ""},
		{"path below a session id", http.MethodDelete, "/.sessiongate/sessions/a/b", token, http.StatusNotFound, "not_found", ""},
		{"no token", http.MethodGet, "/.sessiongate/sessions", "", http.StatusUnauthorized, "missing_token", ""},
		{"forged token", http.MethodGet, "/.sessiongate/sessions", token + "x", http.StatusUnauthorized, "invalid_token", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := testutil.Do(t, tt.method, gate.URL+tt.path, tt.token, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, resp.StatusCode, body, tt.status)
			}
			var e testutil.ErrorBody
			testutil.DecodeJSON(t, body, &e)
			if e.Error != tt.code {
				t.Errorf("error = %q, want %q", e.Error, tt.code)
			}
			if !strings.HasSuffix(e.Message, ".") || len(e.Message) < 20 {
				t.Errorf("message = %q, want a sentence that says what was wrong", e.Message)
			}
			if got := resp.Header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
			if tt.status == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}

	if got := s.backendPaths(); len(got) != 0 {
		t.Errorf("backend received %v, want nothing from /.sessiongate/", got)
	}
	expectStatus(t, http.MethodGet, gate.URL+"/api/me", token, http.StatusOK)
}

// adminDo sends an admin request with the given bearer token; an empty
// token sends no Authorization header.
func adminDo(t *testing.T, gate *testutil.Gate, method, path, token string) (*http.Response, string) {
	t.Helper()
	return testutil.Do(t, method, gate.AdminURL+path, token, nil)
}

// adminPaths are one request on each admin endpoint.
var adminPaths = []struct{ method, path string }{
	{http.MethodGet, "/admin/stats"},
	{http.MethodGet, "/admin/users/alice/sessions"},
	{http.MethodDelete, "/admin/users/alice/sessions"},
	{http.MethodDelete, "/admin/users/alice/sessions/AAAAAAAAAAAAAAAAAAAAAA"},
}

func TestAdminAPIAbsentWithoutAdminToken(t *testing.T) {
	t.Parallel()
	s := newRevocationSetup(t, map[string]string{"ADMIN_TOKEN": ""})
	gate := testutil.StartGate(t, s.env)
	alice := testutil.Token(t, "alice")
	expectStatus(t, http.MethodGet, gate.URL+"/api/me", alice, http.StatusOK)

	for _, p := range adminPaths {
		t.Run(p.method+" "+p.path, func(t *testing.T) {
			for _, token := range []string{"", revocationAdminToken} {
				resp, body := adminDo(t, gate, p.method, p.path, token)
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("with token %q: status = %d %s, want 404", token, resp.StatusCode, body)
				}
			}
		})
	}
	expectStatus(t, http.MethodGet, gate.URL+"/api/me", alice, http.StatusOK)
}

// Security regression: the admin API ends sessions of any user, so every
// request without the exact token must be rejected before it acts.
func TestAdminAPIRejectsMissingOrWrongToken(t *testing.T) {
	t.Parallel()
	s := newRevocationSetup(t, nil)
	gate := testutil.StartGate(t, s.env)
	alice := testutil.Token(t, "alice")
	expectStatus(t, http.MethodGet, gate.URL+"/api/me", alice, http.StatusOK)

	credentials := []struct {
		name          string
		authorization string
		code          string
	}{
		{"no header", "", "missing_token"},
		{"wrong token", "Bearer wrong-token", "unauthorized"},
		{"prefix of token", "Bearer " + revocationAdminToken[:10], "unauthorized"},
		{"token with suffix", "Bearer " + revocationAdminToken + "x", "unauthorized"},
		{"basic scheme", "Basic " + revocationAdminToken, "unauthorized"},
		{"user's JWT", "Bearer " + alice, "unauthorized"},
	}
	for _, c := range credentials {
		for _, p := range adminPaths {
			t.Run(c.name+"/"+p.method+" "+p.path, func(t *testing.T) {
				header := http.Header{}
				if c.authorization != "" {
					header.Set("Authorization", c.authorization)
				}
				resp, body := testutil.Do(t, p.method, gate.AdminURL+p.path, "", header)
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("status = %d %s, want 401", resp.StatusCode, body)
				}
				var e testutil.ErrorBody
				testutil.DecodeJSON(t, body, &e)
				if e.Error != c.code {
					t.Errorf("error = %q, want %q", e.Error, c.code)
				}
				if !strings.Contains(e.Message, "ADMIN_TOKEN") {
					t.Errorf("message = %q, want it to name ADMIN_TOKEN", e.Message)
				}
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			})
		}
	}

	expectStatus(t, http.MethodGet, gate.URL+"/api/me", alice, http.StatusOK)
	if got := gate.CountLog("admin request rejected", `"result":"unauthorized"`, `"remote_addr":"127.0.0.1:`); got != len(credentials)*len(adminPaths) {
		t.Errorf("logged %d rejected admin requests with remote address, want %d", got, len(credentials)*len(adminPaths))
	}
}

// adminList is the body of GET /admin/users/{user}/sessions.
type adminList struct {
	UserID   string `json:"user_id"`
	Sessions []struct {
		ID     string `json:"id"`
		UserID string `json:"user_id"`
	} `json:"sessions"`
}

func TestAdminRevokesSessionsAndAuditLogs(t *testing.T) {
	t.Parallel()
	s := newRevocationSetup(t, nil)
	gate := testutil.StartGate(t, s.env)
	phone := testutil.Token(t, "alice")
	laptop := testutil.Token(t, "alice")
	bob := testutil.Token(t, "bob")
	for _, token := range []string{phone, laptop, bob} {
		expectStatus(t, http.MethodGet, gate.URL+"/api/me", token, http.StatusOK)
	}

	// List.
	resp, body := adminDo(t, gate, http.MethodGet, "/admin/users/alice/sessions", revocationAdminToken)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET sessions of alice = %d %s, want 200", resp.StatusCode, body)
	}
	var list adminList
	testutil.DecodeJSON(t, body, &list)
	ids := map[string]bool{}
	for _, sess := range list.Sessions {
		ids[sess.ID] = true
	}
	if len(ids) != 2 || !ids[testutil.SessionIDOf(phone)] || !ids[testutil.SessionIDOf(laptop)] {
		t.Errorf("listed sessions %v, want alice's phone and laptop", ids)
	}

	// Revoke one.
	path := "/admin/users/alice/sessions/" + testutil.SessionIDOf(phone)
	resp, body = adminDo(t, gate, http.MethodDelete, path, revocationAdminToken)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE %s = %d %s, want 200", path, resp.StatusCode, body)
	}
	expectRejection(t, http.MethodGet, gate.URL+"/api/me", phone, http.StatusUnauthorized, "session_revoked")
	expectStatus(t, http.MethodGet, gate.URL+"/api/me", laptop, http.StatusOK)
	resp, body = adminDo(t, gate, http.MethodDelete, path, revocationAdminToken)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("second DELETE %s = %d %s, want 404", path, resp.StatusCode, body)
	}
	// Another user's session under alice's path is not alice's.
	resp, body = adminDo(t, gate, http.MethodDelete, "/admin/users/alice/sessions/"+testutil.SessionIDOf(bob), revocationAdminToken)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("DELETE bob's session under alice = %d %s, want 404", resp.StatusCode, body)
	}

	// Revoke all.
	resp, body = adminDo(t, gate, http.MethodDelete, "/admin/users/alice/sessions", revocationAdminToken)
	var revoked struct {
		Revoked int `json:"revoked"`
	}
	testutil.DecodeJSON(t, body, &revoked)
	if resp.StatusCode != http.StatusOK || revoked.Revoked != 1 {
		t.Errorf("DELETE sessions of alice = %d %s, want 200 with revoked 1", resp.StatusCode, body)
	}
	expectRejection(t, http.MethodGet, gate.URL+"/api/me", laptop, http.StatusUnauthorized, "session_revoked")
	expectStatus(t, http.MethodGet, gate.URL+"/api/me", bob, http.StatusOK)

	lines := testutil.LogLines(gate.Output())
	audits := []struct {
		action, result string
	}{
		{"list_sessions", "ok"},
		{"revoke_session", "ok"},
		{"revoke_session", "not_found"},
		{"revoke_user_sessions", "ok"},
	}
	for _, a := range audits {
		t.Run("log "+a.action+" "+a.result, func(t *testing.T) {
			line, ok := testutil.FindLog(lines, map[string]string{"msg": "admin action", "action": a.action, "result": a.result, "user_id": "alice"})
			if !ok {
				t.Fatalf("no admin action log with action %q and result %q", a.action, a.result)
			}
			if addr, _ := line["remote_addr"].(string); !strings.HasPrefix(addr, "127.0.0.1:") {
				t.Errorf("remote_addr = %q, want the caller's 127.0.0.1:port", addr)
			}
		})
	}
}

func TestAdminStatsReportsLastSweep(t *testing.T) {
	t.Parallel()
	s := newRevocationSetup(t, nil)
	gate := testutil.StartGate(t, s.env)

	resp, body := adminDo(t, gate, http.MethodGet, "/admin/stats", revocationAdminToken)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /admin/stats = %d %s, want 200", resp.StatusCode, body)
	}
	var before map[string]any
	testutil.DecodeJSON(t, body, &before)
	if v, ok := before["last_sweep"]; !ok || v != nil {
		t.Errorf("stats before any sweep = %s, want last_sweep null", body)
	}

	for _, user := range []string{"alice", "alice", "bob"} {
		expectStatus(t, http.MethodGet, gate.URL+"/api/me", testutil.Token(t, user), http.StatusOK)
	}
	// An index entry whose session is gone, for the sweep to remove.
	ctx := context.Background()
	client := s.redis.Client(revocationDB)
	if err := client.ZAdd(ctx, "sessiongate:{bob}:i", redis.Z{Score: float64(time.Now().Add(time.Hour).UnixMilli()), Member: "BBBBBBBBBBBBBBBBBBBBBB"}).Err(); err != nil {
		t.Fatalf("add stale index entry: %v", err)
	}
	sweepStart := time.Now()
	if code, out := testutil.RunOnce(t, s.env, "cleanup"); code != 0 {
		t.Fatalf("sessiongate cleanup exited %d:\n%s", code, out)
	}

	_, body = adminDo(t, gate, http.MethodGet, "/admin/stats", revocationAdminToken)
	var after struct {
		LastSweep *struct {
			StartedAt time.Time      `json:"started_at"`
			Sessions  int            `json:"sessions"`
			Users     int            `json:"users"`
			Removed   map[string]int `json:"removed"`
		} `json:"last_sweep"`
	}
	testutil.DecodeJSON(t, body, &after)
	if after.LastSweep == nil {
		t.Fatalf("stats after cleanup = %s, want last_sweep set", body)
	}
	got := after.LastSweep
	if got.Sessions != 3 || got.Users != 2 {
		t.Errorf("last sweep saw %d sessions of %d users, want 3 of 2", got.Sessions, got.Users)
	}
	if got.Removed["stale_index_entry"] != 1 {
		t.Errorf("last sweep removed %v, want 1 stale_index_entry", got.Removed)
	}
	if got.StartedAt.Before(sweepStart.Add(-time.Second)) || got.StartedAt.After(time.Now()) {
		t.Errorf("last sweep started_at = %v, want between %v and now", got.StartedAt, sweepStart)
	}
}

// Security regression: the marker must outlive the token, or the revoked
// token could create a new session once the marker expired. The verifier
// accepts a token until exp plus JWT_LEEWAY, so the marker lives that long.
func TestRevocationMarkerLivesUntilTokenExpiry(t *testing.T) {
	t.Parallel()
	const leeway = 5 * time.Second
	s := newRevocationSetup(t, map[string]string{"JWT_LEEWAY": leeway.String()})
	gate := testutil.StartGate(t, s.env)
	client := s.redis.Client(revocationDB)
	ctx := context.Background()

	tests := []struct {
		name     string
		user     string
		lifetime time.Duration
		// capped means the marker TTL is the 30-day maximum instead of
		// the token's remaining lifetime plus the leeway.
		capped bool
	}{
		{"ten-minute token", "short", 10 * time.Minute, false},
		{"sixty-day token capped at thirty days", "long", 60 * 24 * time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iat := time.Now()
			exp := time.Unix(iat.Unix(), 0).Add(tt.lifetime)
			token := testutil.TokenIssuedAt(t, tt.user, iat, tt.lifetime)
			other := testutil.Token(t, tt.user)
			expectStatus(t, http.MethodGet, gate.URL+"/api/me", token, http.StatusOK)
			expectStatus(t, http.MethodGet, gate.URL+"/api/me", other, http.StatusOK)
			expectStatus(t, http.MethodPost, gate.URL+"/.sessiongate/logout", token, http.StatusOK)

			id := testutil.SessionIDOf(token)
			base := "sessiongate:{" + tt.user + "}:"
			ttl, err := client.PTTL(ctx, base+"r:"+id).Result()
			if err != nil {
				t.Fatalf("PTTL of marker: %v", err)
			}
			want := time.Until(exp) + leeway
			if tt.capped {
				want = 30 * 24 * time.Hour
			}
			if diff := ttl - want; diff < -time.Second || diff > time.Second {
				t.Errorf("marker TTL = %v, want %v within 1s", ttl, want)
			}

			// Nothing of the session remains but the marker; the other
			// session of the user is untouched.
			for _, key := range s.userKeys(t, tt.user) {
				if strings.Contains(key, id) && key != base+"r:"+id {
					t.Errorf("key %s remains after revocation", key)
				}
			}
			if err := client.ZScore(ctx, base+"i", id).Err(); err != redis.Nil {
				t.Errorf("ZSCORE of revoked session in index: err = %v, want redis.Nil", err)
			}
			if n, _ := client.Exists(ctx, base+"s:"+testutil.SessionIDOf(other)).Result(); n != 1 {
				t.Errorf("other session's key exists = %d, want 1", n)
			}
			expectRejection(t, http.MethodGet, gate.URL+"/api/me", token, http.StatusUnauthorized, "session_revoked")
			expectStatus(t, http.MethodGet, gate.URL+"/api/me", other, http.StatusOK)
		})
	}
}

// Security regression: replicas share one Redis, so a revocation through
// one replica must hold on every other.
func TestRevocationHoldsAcrossProcesses(t *testing.T) {
	t.Parallel()
	s := newRevocationSetup(t, nil)
	first := testutil.StartGate(t, s.env)
	second := testutil.StartGate(t, s.env)

	loggedOut := testutil.Token(t, "alice")
	deleted := testutil.Token(t, "alice")
	fresh := testutil.TokenIssuedAt(t, "carol", time.Now().Add(-time.Second), time.Hour)
	carol := testutil.Token(t, "carol")
	for _, token := range []string{loggedOut, deleted, carol} {
		expectStatus(t, http.MethodGet, first.URL+"/api/me", token, http.StatusOK)
		expectStatus(t, http.MethodGet, second.URL+"/api/me", token, http.StatusOK)
	}

	expectStatus(t, http.MethodPost, first.URL+"/api/logout", loggedOut, http.StatusOK)
	resp, body := adminDo(t, first, http.MethodDelete, "/admin/users/alice/sessions/"+testutil.SessionIDOf(deleted), revocationAdminToken)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin DELETE through first = %d %s, want 200", resp.StatusCode, body)
	}
	expectStatus(t, http.MethodPost, first.URL+"/.sessiongate/logout-all", carol, http.StatusOK)

	tests := []struct {
		name  string
		token string
	}{
		{"logged out through logout path", loggedOut},
		{"deleted through admin API", deleted},
		{"logged out everywhere", carol},
		{"earlier token never seen", fresh},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectRejection(t, http.MethodGet, second.URL+"/api/me", tt.token, http.StatusUnauthorized, "session_revoked")
		})
	}

	resp, body = adminDo(t, second, http.MethodGet, "/admin/users/alice/sessions", revocationAdminToken)
	var list adminList
	testutil.DecodeJSON(t, body, &list)
	if resp.StatusCode != http.StatusOK || len(list.Sessions) != 0 {
		t.Errorf("second's list of alice = %d %s, want 200 with no sessions", resp.StatusCode, body)
	}
}
