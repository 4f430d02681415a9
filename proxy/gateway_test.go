package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/configs"
	"github.com/sessiongate/sessiongate/sessions"
)

const gatewaySecret = "gateway-test-secret-0123456789ab"

// recordingBackend is an httptest server that keeps the headers of the
// last request it received.
type recordingBackend struct {
	*httptest.Server
	mu       sync.Mutex
	calls    int
	last     http.Header
	lastPath string
	lastBody int64
}

func startRecordingBackend(t *testing.T) *recordingBackend {
	t.Helper()
	b := &recordingBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		b.mu.Lock()
		b.calls++
		b.last = r.Header.Clone()
		b.lastPath, b.lastBody = r.URL.Path, n
		b.mu.Unlock()
		w.Write([]byte("backend"))
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *recordingBackend) lastHeader(t *testing.T) http.Header {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.calls == 0 {
		t.Fatal("backend received no request")
	}
	return b.last
}

func (b *recordingBackend) callCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

// fakeClock is a settable clock shared by the gateway and the memory store.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// gatewayFixture is a Gateway on a memory store in front of a recording
// backend, with a fake clock.
type gatewayFixture struct {
	gateway *Gateway
	backend *recordingBackend
	clock   *fakeClock
}

// newGatewayFixture builds the fixture from env on top of a minimal valid
// configuration. store replaces the memory store when not nil.
func newGatewayFixture(t *testing.T, env map[string]string, store sessions.Store) *gatewayFixture {
	t.Helper()
	backend := startRecordingBackend(t)
	full := map[string]string{
		"UPSTREAM_URL":  backend.URL,
		"JWT_SECRET":    gatewaySecret,
		"SESSION_STORE": "memory",
	}
	for k, v := range env {
		full[k] = v
	}
	cfg, err := configs.LoadFrom(full)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatalf("configuration: %v", err)
	}

	clock := &fakeClock{now: time.Now().Truncate(time.Second)}
	verifier, err := sessions.OpenVerifier(context.Background(), cfg, zap.NewNop())
	if err != nil {
		t.Fatalf("OpenVerifier: %v", err)
	}
	if store == nil {
		store = sessions.NewMemoryStore(sessions.PolicyFrom(cfg))
	}
	g, err := NewGateway(Options{Config: cfg, Verifier: verifier, Store: store, Logger: zap.NewNop(), Now: clock.Now})
	if err != nil {
		t.Fatalf("NewGateway: %v", err)
	}
	return &gatewayFixture{gateway: g, backend: backend, clock: clock}
}

// token signs claims for user at the fixture's current time; extra
// claims are added or replace the defaults.
func (f *gatewayFixture) token(t *testing.T, user string, extra jwt.MapClaims) string {
	t.Helper()
	now := f.clock.Now()
	claims := jwt.MapClaims{
		"sub":   user,
		"email": user + "@example.test",
		"iat":   now.Unix(),
		"exp":   now.Add(time.Hour).Unix(),
	}
	for k, v := range extra {
		claims[k] = v
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(gatewaySecret))
	if err != nil {
		t.Fatalf("sign token: %v", err)
	}
	return s
}

// serve sends one request through the gateway. header keys are set as
// given, without canonicalization.
func (f *gatewayFixture) serve(t *testing.T, method, target, token string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for k, vs := range header {
		r.Header[k] = append(r.Header[k], vs...)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	f.gateway.ServeHTTP(w, r)
	return w
}

// decodeError checks the JSON error shape and returns its code.
func decodeError(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body %q is not JSON: %v", w.Body.String(), err)
	}
	if body.Message == "" {
		t.Errorf("error body %q has no message", w.Body.String())
	}
	return body.Error
}

// spoofedIdentity holds client-supplied identity headers in the spellings
// a PHP or CGI backend would read as the verified ones.
func spoofedIdentity() http.Header {
	return http.Header{
		"X-User-Id":    {"attacker", "attacker-2"},
		"x-user-id":    {"lower"},
		"X_User_Id":    {"underscore"},
		"x_user_email": {"evil@example.test"},
		"X-Session-Id": {"forged"},
		"Connection":   {"X-User-Id"},
	}
}

// assertNoSpoofedIdentity fails when any identity header other than the
// canonical names reached the backend, or a canonical one carries a
// client-chosen value.
func assertNoSpoofedIdentity(t *testing.T, got http.Header) {
	t.Helper()
	filter := newHeaderFilter("X-User-Id", "X-User-Email", "X-Session-Id", "X-User-Role")
	for name, values := range got {
		if !filter.matches(name) {
			continue
		}
		if name != http.CanonicalHeaderKey(name) || strings.Contains(name, "_") {
			t.Errorf("backend received spoofed header %s: %q", name, values)
		}
		for _, v := range values {
			if v == "attacker" || v == "attacker-2" || v == "lower" || v == "underscore" ||
				v == "evil@example.test" || v == "forged" || v == "admin" {
				t.Errorf("backend received client value %s: %q", name, v)
			}
		}
	}
}

func TestGatewayForwardsVerifiedIdentity(t *testing.T) {
	f := newGatewayFixture(t, map[string]string{"FORWARD_CLAIMS": "role:X-User-Role"}, nil)
	token := f.token(t, "alice", jwt.MapClaims{"role": "editor"})
	spoofed := spoofedIdentity()
	spoofed["x_user_role"] = []string{"admin"}

	w := f.serve(t, http.MethodGet, "/api/items", token, spoofed)
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
	}

	got := f.backend.lastHeader(t)
	wantSession := sessions.SessionID(sessions.TokenDigest(token))
	checks := []struct{ name, want string }{
		{"X-User-Id", "alice"},
		{"X-User-Email", "alice@example.test"},
		{"X-Session-Id", wantSession},
		{"X-User-Role", "editor"},
	}
	for _, c := range checks {
		if vs := got.Values(c.name); len(vs) != 1 || vs[0] != c.want {
			t.Errorf("backend %s = %q, want [%q]", c.name, vs, c.want)
		}
	}
	assertNoSpoofedIdentity(t, got)
}

// A token without the forwarded claim must not let the client's own
// header through.
func TestGatewayDropsSpoofedClaimHeader(t *testing.T) {
	f := newGatewayFixture(t, map[string]string{"FORWARD_CLAIMS": "role:X-User-Role"}, nil)

	w := f.serve(t, http.MethodGet, "/", f.token(t, "bob", nil), http.Header{"X_User_Role": {"admin"}, "X-User-Role": {"admin"}})
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
	}
	assertNoSpoofedIdentity(t, f.backend.lastHeader(t))
	if v := f.backend.lastHeader(t).Values("X-User-Role"); len(v) != 0 {
		t.Errorf("backend X-User-Role = %q, want none", v)
	}
}

func TestGatewayRejectsBadRequests(t *testing.T) {
	f := newGatewayFixture(t, nil, nil)
	expired := f.token(t, "carol", jwt.MapClaims{"exp": f.clock.Now().Add(-time.Hour).Unix()})
	tests := []struct {
		name       string
		token      string
		header     http.Header
		wantStatus int
		wantCode   string
		wantAuth   string
	}{
		{"no token", "", nil, 401, CodeMissingToken, `Bearer realm="sessiongate"`},
		{"basic credentials", "", http.Header{"Authorization": {"Basic dTpw"}}, 401, CodeMissingToken, `Bearer realm="sessiongate"`},
		{"malformed token", "abc.def", nil, 401, CodeInvalidToken, `error="invalid_token"`},
		{"expired token", expired, nil, 401, CodeInvalidToken, `error="invalid_token"`},
		{"oversized token", strings.Repeat("a", maxTokenBytes+1), nil, 401, CodeInvalidToken, `error="invalid_token"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.backend.callCount()
			w := f.serve(t, http.MethodGet, "/private", tt.token, tt.header)
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			if code := decodeError(t, w); code != tt.wantCode {
				t.Errorf("error code = %q, want %q", code, tt.wantCode)
			}
			auth := w.Header().Get("WWW-Authenticate")
			if !strings.Contains(auth, tt.wantAuth) {
				t.Errorf("WWW-Authenticate = %q, want it to contain %q", auth, tt.wantAuth)
			}
			if tt.wantCode == CodeMissingToken && strings.Contains(auth, "error=") {
				t.Errorf("WWW-Authenticate = %q, want no error attribute without a token", auth)
			}
			if n := f.backend.callCount(); n != before {
				t.Errorf("backend received %d requests, want none", n-before)
			}
		})
	}
}

func TestGatewayPublicPaths(t *testing.T) {
	f := newGatewayFixture(t, map[string]string{"PUBLIC_PATHS": "/health,/assets/"}, nil)
	valid := f.token(t, "dave", nil)
	tests := []struct {
		name         string
		path         string
		token        string
		wantStatus   int
		wantIdentity string // empty means anonymous
	}{
		{"public without token", "/health", "", 200, ""},
		{"public subpath without token", "/health/live", "", 200, ""},
		{"public with invalid token", "/health", "not.a.token", 200, ""},
		{"public with valid token", "/health", valid, 200, "dave"},
		{"trailing slash prefix", "/assets/app.js", "", 200, ""},
		{"prefix is whole segments only", "/healthy", "", 401, ""},
		{"dot segments leave public prefix", "/health/../admin", "", 401, ""},
		{"private without token", "/admin", "", 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := f.serve(t, http.MethodGet, tt.path, tt.token, spoofedIdentity())
			if w.Code != tt.wantStatus {
				t.Fatalf("GET %s status = %d, want %d; body %s", tt.path, w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantStatus != http.StatusOK {
				return
			}
			got := f.backend.lastHeader(t)
			assertNoSpoofedIdentity(t, got)
			if id := got.Get("X-User-Id"); id != tt.wantIdentity {
				t.Errorf("backend X-User-Id = %q, want %q", id, tt.wantIdentity)
			}
		})
	}
}

func TestExtractTokenSources(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		cookie string
		want   string
		wantOK bool
	}{
		{"bearer", http.Header{"Authorization": {"Bearer abc"}}, "", "abc", true},
		{"scheme in any case", http.Header{"Authorization": {"bearer abc"}}, "", "abc", true},
		{"cookie when no header", http.Header{"Cookie": {"jwt=fromcookie"}}, "jwt", "fromcookie", true},
		{"header wins over cookie", http.Header{"Authorization": {"Bearer abc"}, "Cookie": {"jwt=fromcookie"}}, "jwt", "abc", true},
		{"cookie after basic header", http.Header{"Authorization": {"Basic dTpw"}, "Cookie": {"jwt=fromcookie"}}, "jwt", "fromcookie", true},
		{"cookie not configured", http.Header{"Cookie": {"jwt=fromcookie"}}, "", "", false},
		{"other cookie only", http.Header{"Cookie": {"session=x"}}, "jwt", "", false},
		{"empty bearer", http.Header{"Authorization": {"Bearer "}}, "", "", false},
		{"nothing", nil, "jwt", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header = tt.header.Clone()
			if r.Header == nil {
				r.Header = http.Header{}
			}
			got, _, ok := extractToken(r, tt.cookie)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("extractToken = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// The create window exists so that a session that expired from idleness
// cannot be revived by its still-valid token, whatever JWT_LEEWAY is.
func TestGatewayIdleSessionIsNotRevived(t *testing.T) {
	f := newGatewayFixture(t, map[string]string{"SESSION_LIFETIME": "2s"}, nil)
	token := f.token(t, "erin", nil)

	if w := f.serve(t, http.MethodGet, "/", token, nil); w.Code != http.StatusOK {
		t.Fatalf("first request status = %d, want 200; body %s", w.Code, w.Body)
	}
	f.clock.Advance(3 * time.Second)
	for attempt := 1; attempt <= 2; attempt++ {
		w := f.serve(t, http.MethodGet, "/", token, nil)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("request %d after 3s idle: status = %d, want 401", attempt, w.Code)
		}
		if code := decodeError(t, w); code != CodeSessionExpired {
			t.Errorf("request %d after 3s idle: code = %q, want %q", attempt, code, CodeSessionExpired)
		}
	}
}

func TestGatewaySlidesIdleTimeout(t *testing.T) {
	f := newGatewayFixture(t, map[string]string{"SESSION_LIFETIME": "10s"}, nil)
	token := f.token(t, "frank", nil)

	// Six requests 6 s apart span 36 s, far beyond the 10 s lifetime, and
	// each one resets the idle timer.
	for i := range 6 {
		if w := f.serve(t, http.MethodGet, "/", token, nil); w.Code != http.StatusOK {
			t.Fatalf("request %d status = %d, want 200; body %s", i+1, w.Code, w.Body)
		}
		f.clock.Advance(6 * time.Second)
	}
}

func TestGatewayLogoutPathRevokesSession(t *testing.T) {
	f := newGatewayFixture(t, map[string]string{"LOGOUT_PATHS": "/logout"}, nil)
	token := f.token(t, "gina", nil)

	if w := f.serve(t, http.MethodGet, "/", token, nil); w.Code != http.StatusOK {
		t.Fatalf("first request status = %d, want 200", w.Code)
	}
	before := f.backend.callCount()
	if w := f.serve(t, http.MethodPost, "/logout", token, nil); w.Code != http.StatusOK {
		t.Fatalf("POST /logout status = %d, want 200; body %s", w.Code, w.Body)
	}
	if f.backend.callCount() != before+1 {
		t.Errorf("backend did not receive the logout request")
	}

	w := f.serve(t, http.MethodGet, "/", token, nil)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("request after logout status = %d, want 401", w.Code)
	}
	if code := decodeError(t, w); code != CodeSessionRevoked {
		t.Errorf("request after logout code = %q, want %q", code, CodeSessionRevoked)
	}
}

func TestGatewayNeverForwardsReservedPrefix(t *testing.T) {
	f := newGatewayFixture(t, map[string]string{"PUBLIC_PATHS": "/"}, nil)
	token := f.token(t, "hank", nil)
	for _, path := range []string{"/.sessiongate/unknown", "/.sessiongate", "/.sessiongate/sessions/a/b"} {
		t.Run(path, func(t *testing.T) {
			before := f.backend.callCount()
			w := f.serve(t, http.MethodGet, path, token, nil)
			if w.Code != http.StatusNotFound {
				t.Errorf("GET %s status = %d, want 404", path, w.Code)
			}
			if n := f.backend.callCount(); n != before {
				t.Errorf("GET %s reached the backend", path)
			}
		})
	}
}

// failingStore is a Store whose every call fails, as when Redis is down.
type failingStore struct{ sessions.Store }

var errStoreDown = errors.New("store down")

func (failingStore) Access(context.Context, sessions.AccessRequest) (sessions.AccessResult, error) {
	return sessions.AccessResult{}, errStoreDown
}

func TestGatewayStoreFailureModes(t *testing.T) {
	tests := []struct {
		mode         string
		wantStatus   int
		wantIdentity string
	}{
		{"closed", http.StatusServiceUnavailable, ""},
		{"open", http.StatusOK, "ivan"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			f := newGatewayFixture(t, map[string]string{"REDIS_FAILURE_MODE": tt.mode}, failingStore{})
			w := f.serve(t, http.MethodGet, "/", f.token(t, "ivan", nil), spoofedIdentity())
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantStatus != http.StatusOK {
				if code := decodeError(t, w); code != CodeStoreUnavailable {
					t.Errorf("code = %q, want %q", code, CodeStoreUnavailable)
				}
				return
			}
			got := f.backend.lastHeader(t)
			assertNoSpoofedIdentity(t, got)
			if id := got.Get("X-User-Id"); id != tt.wantIdentity {
				t.Errorf("backend X-User-Id = %q, want %q", id, tt.wantIdentity)
			}
		})
	}
}

func TestGatewayBackendDownGives502(t *testing.T) {
	f := newGatewayFixture(t, nil, nil)
	f.backend.Close()

	w := f.serve(t, http.MethodGet, "/", f.token(t, "judy", nil), nil)
	if w.Code != http.StatusBadGateway {
		t.Fatalf("status = %d, want 502; body %s", w.Code, w.Body)
	}
	if code := decodeError(t, w); code != CodeUpstreamUnavailable {
		t.Errorf("code = %q, want %q", code, CodeUpstreamUnavailable)
	}
}

func TestGatewayForwardedHeadersFollowTrust(t *testing.T) {
	spoofed := http.Header{
		"X-Forwarded-For":   {"203.0.113.9"},
		"X-Forwarded-Proto": {"https"},
		"X_Forwarded_For":   {"198.51.100.7"},
		"X-Real-Ip":         {"203.0.113.9"},
		"x_real_ip":         {"198.51.100.7"},
	}
	tests := []struct {
		name       string
		trusted    string
		wantFor    string
		wantProto  string
		wantRealIP string
	}{
		// httptest.NewRequest comes from 192.0.2.1.
		// X-Real-Ip is always the client IP sessiongate computed.
		{"untrusted peer", "10.0.0.0/8", "192.0.2.1", "http", "192.0.2.1"},
		{"trusted peer", "192.0.2.0/24", "203.0.113.9, 192.0.2.1", "https", "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newGatewayFixture(t, map[string]string{"TRUSTED_PROXIES": tt.trusted}, nil)
			if w := f.serve(t, http.MethodGet, "/", f.token(t, "kim", nil), spoofed); w.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
			}
			got := f.backend.lastHeader(t)

			if v := strings.Join(got.Values("X-Forwarded-For"), ", "); v != tt.wantFor {
				t.Errorf("X-Forwarded-For = %q, want %q", v, tt.wantFor)
			}
			if v := got.Get("X-Forwarded-Proto"); v != tt.wantProto {
				t.Errorf("X-Forwarded-Proto = %q, want %q", v, tt.wantProto)
			}
			if v := got.Get("X-Real-Ip"); v != tt.wantRealIP {
				t.Errorf("X-Real-Ip = %q, want %q", v, tt.wantRealIP)
			}
			for name, values := range got {
				if strings.Contains(name, "_") {
					t.Errorf("backend received header %s: %q", name, values)
				}
			}
		})
	}
}
