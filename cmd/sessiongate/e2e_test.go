package main_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sessiongate/sessiongate/internal/testutil"
	"github.com/sessiongate/sessiongate/sessions"
)

// coreDB is the Redis database of these tests, the REDIS_SESSION_DB default.
const coreDB = 2

// coreStack is one sessiongate process with its own redis-server and
// recording backend.
type coreStack struct {
	redis   *testutil.Redis
	backend *testutil.Backend
	gate    *testutil.Gate
}

// startCoreStack starts Redis, the backend and sessiongate with the base
// environment plus extra.
func startCoreStack(t *testing.T, extra map[string]string) *coreStack {
	t.Helper()
	s := &coreStack{redis: testutil.StartRedis(t), backend: testutil.StartBackend(t)}
	env := testutil.BaseEnv(s.backend.URL, s.redis.URL(coreDB))
	for k, v := range extra {
		env[k] = v
	}
	s.gate = testutil.StartGate(t, env)
	return s
}

// sessionKeyOf returns the Redis key of the session of token, whose user id
// needs no escaping in the key's hash tag.
func sessionKeyOf(user, token string) string {
	return "sessiongate:{" + user + "}:s:" + sessions.SessionID(sessions.TokenDigest(token))
}

// rejection is the JSON body of every rejection.
type rejection struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// requireRejection checks status, the JSON body's code and message, and
// the WWW-Authenticate header that RFC 6750 requires on a 401.
func requireRejection(t *testing.T, resp *http.Response, body string, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, status, body)
	}
	var got rejection
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("body %q is not JSON: %v", body, err)
	}
	if got.Error != code {
		t.Errorf("error = %q, want %q", got.Error, code)
	}
	if got.Message == "" {
		t.Errorf("body %q has no message", body)
	}
	if status != http.StatusUnauthorized {
		return
	}
	auth := resp.Header.Get("WWW-Authenticate")
	if !strings.HasPrefix(auth, "Bearer") {
		t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", auth)
	}
	hasError := strings.Contains(auth, `error="invalid_token"`)
	if code == "missing_token" && strings.Contains(auth, "error=") {
		t.Errorf("WWW-Authenticate = %q, want no error attribute when no token was sent", auth)
	}
	if code != "missing_token" && !hasError {
		t.Errorf("WWW-Authenticate = %q, want error=\"invalid_token\"", auth)
	}
}

// identityNames are the default identity headers, lower case with "-".
var identityNames = map[string]string{"x-user-id": "X-User-Id", "x-user-email": "X-User-Email", "x-session-id": "X-Session-Id"}

// requireIdentity checks that the backend saw exactly the verified
// identity, or none at all when user is empty, and no other spelling of an
// identity header.
func requireIdentity(t *testing.T, got http.Header, user, token string) {
	t.Helper()
	want := map[string]string{}
	if user != "" {
		want["X-User-Id"] = user
		want["X-User-Email"] = user + "@example.test"
		want["X-Session-Id"] = sessions.SessionID(sessions.TokenDigest(token))
	}
	for name, values := range got {
		canonical, ok := identityNames[strings.ToLower(strings.ReplaceAll(name, "_", "-"))]
		if !ok {
			continue
		}
		if name != canonical {
			t.Errorf("backend received header %s: %q, a client-supplied spelling", name, values)
			continue
		}
		if _, expected := want[name]; !expected {
			t.Errorf("backend received %s: %q on an anonymous request", name, values)
		}
	}
	for name, value := range want {
		if vs := got.Values(name); len(vs) != 1 || vs[0] != value {
			t.Errorf("backend %s = %q, want [%q]", name, vs, value)
		}
	}
}

// spoofHeaders are client-supplied identity headers in every spelling a
// PHP or CGI backend would read as the verified ones, plus a Connection
// header that names X-User-Id as hop-by-hop.
func spoofHeaders() http.Header {
	return http.Header{
		"X-User-Id":    {"attacker", "attacker-2"},
		"x-user-id":    {"lower"},
		"X-USER-ID":    {"upper"},
		"X_User_Id":    {"underscore"},
		"x_user_email": {"evil@example.test"},
		"X-User-Email": {"evil2@example.test"},
		"X-Session-Id": {"forged"},
		"x_session_id": {"forged-2"},
		"Connection":   {"X-User-Id"},
	}
}

// Every spelling of a client's identity header must be removed before the
// request is forwarded, with or without a verified identity.
func TestBackendGetsOnlyVerifiedIdentity(t *testing.T) {
	s := startCoreStack(t, map[string]string{"PUBLIC_PATHS": "/public"})
	token := testutil.Token(t, "alice")
	tests := []struct {
		name  string
		path  string
		token string
		user  string
	}{
		{"authenticated", "/api/orders", token, "alice"},
		{"public path without token", "/public/page", "", ""},
		{"public path with invalid token", "/public/page", "not.a.jwt", ""},
		{"public path with valid token", "/public/page", token, "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.backend.Reset()
			resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+tt.path, tt.token, spoofHeaders())
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %d %s, want 200", tt.path, resp.StatusCode, body)
			}
			requireIdentity(t, s.backend.Last(t).Header, tt.user, tt.token)
		})
	}
}

func TestPrivatePathNeedsToken(t *testing.T) {
	s := startCoreStack(t, map[string]string{"PUBLIC_PATHS": "/public"})
	for _, path := range []string{"/private", "/publicity", "/public/../private"} {
		t.Run(path, func(t *testing.T) {
			resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+path, "", spoofHeaders())
			requireRejection(t, resp, body, http.StatusUnauthorized, "missing_token")
		})
	}
	if n := len(s.backend.Received()); n != 0 {
		t.Errorf("backend received %d requests, want none", n)
	}
}

func TestSessionTTLResetsOnRequest(t *testing.T) {
	s := startCoreStack(t, nil)
	client := s.redis.Client(coreDB)
	ctx := context.Background()
	token := testutil.Token(t, "bob")
	key := sessionKeyOf("bob", token)

	if resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/", token, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("first request = %d %s, want 200", resp.StatusCode, body)
	}
	ttl, err := client.TTL(ctx, key).Result()
	if err != nil {
		t.Fatalf("TTL %s: %v", key, err)
	}
	if ttl < 7190*time.Second || ttl > 7200*time.Second {
		t.Fatalf("TTL %s = %v, want about 7199s with the default 2h lifetime", key, ttl)
	}

	// Every key sessiongate wrote must expire by itself.
	keys, err := client.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	if len(keys) == 0 {
		t.Fatal("Redis database 2 holds no keys after a session was created")
	}
	for _, k := range keys {
		if d := client.PTTL(ctx, k).Val(); d <= 0 {
			t.Errorf("key %s has PTTL %v, want a positive TTL", k, d)
		}
	}

	before := client.PTTL(ctx, key).Val()
	time.Sleep(1500 * time.Millisecond)
	idle := client.PTTL(ctx, key).Val()
	if idle > before-time.Second {
		t.Fatalf("PTTL after 1.5s idle = %v, want at least 1s below %v", idle, before)
	}
	if resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/", token, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("second request = %d %s, want 200", resp.StatusCode, body)
	}
	after := client.PTTL(ctx, key).Val()
	if after < idle+time.Second || after > 2*time.Hour {
		t.Errorf("PTTL after a request = %v, want reset to about 2h (idle PTTL was %v)", after, idle)
	}
}

// A session that expired from idleness must not come back through its
// still-valid token, with the default JWT_LEEWAY of 30s.
func TestIdleSessionExpiresAndStaysRejected(t *testing.T) {
	s := startCoreStack(t, map[string]string{"SESSION_LIFETIME": "2s"})
	token := testutil.Token(t, "carol")

	if resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/", token, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("first request = %d %s, want 200", resp.StatusCode, body)
	}
	time.Sleep(3 * time.Second)
	for attempt := 1; attempt <= 2; attempt++ {
		resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/", token, nil)
		requireRejection(t, resp, body, http.StatusUnauthorized, "session_expired")
	}
}

func TestTokenRejections(t *testing.T) {
	s := startCoreStack(t, map[string]string{"JWT_AUDIENCE": "api"})
	withAudience := func(user string, aud any) jwt.MapClaims {
		c := testutil.Claims(user)
		c["aud"] = aud
		return c
	}
	expired := withAudience("dave", "api")
	expired["iat"] = time.Now().Add(-2 * time.Hour).Unix()
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	good := testutil.Sign(t, withAudience("dave", "api"))

	tests := []struct {
		name  string
		token string
		code  string
	}{
		{"missing", "", "missing_token"},
		{"malformed", "abc.def.ghi", "invalid_token"},
		{"not a jwt", "hello", "invalid_token"},
		{"badly signed", testutil.SignWith(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdefgh"), withAudience("dave", "api")), "invalid_token"},
		{"tampered signature", good[:len(good)-3] + "AAA", "invalid_token"},
		{"expired", testutil.Sign(t, expired), "invalid_token"},
		{"alg none", testutil.SignWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, withAudience("dave", "api")), "invalid_token"},
		{"RS256 outside allow-list", testutil.SignWith(t, jwt.SigningMethodRS256, rsaKey(t), withAudience("dave", "api")), "invalid_token"},
		{"wrong audience", testutil.Sign(t, withAudience("dave", "web")), "invalid_token"},
		{"audience array without ours", testutil.Sign(t, withAudience("dave", []string{"web", "mobile"})), "invalid_token"},
		{"no audience", testutil.Token(t, "dave"), "invalid_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/private", tt.token, nil)
			requireRejection(t, resp, body, http.StatusUnauthorized, tt.code)
		})
	}
	if n := len(s.backend.Received()); n != 0 {
		t.Errorf("backend received %d rejected requests, want none", n)
	}

	accepted := map[string]string{
		"audience string": good,
		"audience array":  testutil.Sign(t, withAudience("erin", []string{"web", "api"})),
	}
	for name, token := range accepted {
		t.Run(name, func(t *testing.T) {
			if resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/private", token, nil); resp.StatusCode != http.StatusOK {
				t.Errorf("GET with %s = %d %s, want 200", name, resp.StatusCode, body)
			}
		})
	}
}

// rsaKey returns a fresh 2048-bit RSA key.
func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("generate RSA key: %v", err)
	}
	return key
}

// An HS256 token whose secret is the public key's PEM text must fail: a
// verifier that let the token choose the algorithm would accept it.
func TestPublicKeyRejectsHMACForgery(t *testing.T) {
	key := rsaKey(t)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatalf("marshal public key: %v", err)
	}
	publicPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	path := filepath.Join(t.TempDir(), "public.pem")
	if err := os.WriteFile(path, publicPEM, 0o600); err != nil {
		t.Fatalf("write public key: %v", err)
	}
	s := startCoreStack(t, map[string]string{"JWT_SECRET": "", "JWT_PUBLIC_KEY_FILE": path})

	forged := testutil.SignWith(t, jwt.SigningMethodHS256, publicPEM, testutil.Claims("frank"))
	resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/", forged, nil)
	requireRejection(t, resp, body, http.StatusUnauthorized, "invalid_token")

	genuine := testutil.SignWith(t, jwt.SigningMethodRS256, key, testutil.Claims("frank"))
	if resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/", genuine, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("RS256 token = %d %s, want 200", resp.StatusCode, body)
	}
	requireIdentity(t, s.backend.Last(t).Header, "frank", genuine)
}

func TestTokenCookieWithoutBearerHeader(t *testing.T) {
	s := startCoreStack(t, map[string]string{"TOKEN_COOKIE": "jwt"})
	cookieToken := testutil.Token(t, "gina")
	headerToken := testutil.Token(t, "hank")
	cookie := http.Header{"Cookie": {"theme=dark; jwt=" + cookieToken}}

	if resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/", "", cookie); resp.StatusCode != http.StatusOK {
		t.Fatalf("cookie only = %d %s, want 200", resp.StatusCode, body)
	}
	requireIdentity(t, s.backend.Last(t).Header, "gina", cookieToken)

	if resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/", headerToken, cookie); resp.StatusCode != http.StatusOK {
		t.Fatalf("header and cookie = %d %s, want 200", resp.StatusCode, body)
	}
	requireIdentity(t, s.backend.Last(t).Header, "hank", headerToken)

	resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/", "", http.Header{"Cookie": {"other=" + cookieToken}})
	requireRejection(t, resp, body, http.StatusUnauthorized, "missing_token")
}

func TestForwardedHeadersFollowTrustedProxies(t *testing.T) {
	spoofed := http.Header{
		"X-Forwarded-For":   {"203.0.113.9"},
		"X-Forwarded-Proto": {"https"},
		"X-Forwarded-Host":  {"trusted.example"},
		"X_Forwarded_For":   {"198.51.100.7"},
		"x_forwarded_proto": {"https"},
		"X_Real_Ip":         {"198.51.100.7"},
	}
	tests := []struct {
		name      string
		trusted   string
		wantFor   string
		wantProto string
		wantHost  string // empty means the gate's own host:port
	}{
		{"untrusted peer", "", "127.0.0.1", "http", ""},
		{"peer outside trusted range", "10.0.0.0/8", "127.0.0.1", "http", ""},
		{"trusted peer", "127.0.0.1/32", "203.0.113.9, 127.0.0.1", "https", "trusted.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startCoreStack(t, map[string]string{"TRUSTED_PROXIES": tt.trusted})
			token := testutil.Token(t, "ivan")
			if resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/", token, spoofed); resp.StatusCode != http.StatusOK {
				t.Fatalf("GET = %d %s, want 200", resp.StatusCode, body)
			}
			got := s.backend.Last(t).Header
			wantHost := tt.wantHost
			if wantHost == "" {
				wantHost = strings.TrimPrefix(s.gate.URL, "http://")
			}
			checks := []struct{ name, want string }{
				{"X-Forwarded-For", tt.wantFor},
				{"X-Forwarded-Proto", tt.wantProto},
				{"X-Forwarded-Host", wantHost},
			}
			for _, c := range checks {
				if v := strings.Join(got.Values(c.name), ", "); v != c.want {
					t.Errorf("backend %s = %q, want %q", c.name, v, c.want)
				}
			}
			// PHP reads X_Forwarded_For as X-Forwarded-For, so no
			// underscore spelling may pass, from any peer.
			for name, values := range got {
				if strings.Contains(name, "_") {
					t.Errorf("backend received header %s: %q", name, values)
				}
			}
		})
	}
}

func TestLiveSessionCostsOneRedisCommand(t *testing.T) {
	s := startCoreStack(t, nil)
	client := s.redis.Client(coreDB)
	token := testutil.Token(t, "judy")

	// The first request creates the session and loads the script.
	if resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/", token, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("first request = %d %s, want 200", resp.StatusCode, body)
	}

	// The test's client connects before MONITOR starts, so its own HELLO
	// and SELECT are not recorded.
	before := testutil.CommandCalls(t, client)
	monitor := testutil.StartMonitor(t, s.redis.Addr())
	const requests = 20
	for i := range requests {
		if resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/items/"+strconv.Itoa(i), token, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d = %d %s, want 200", i+1, resp.StatusCode, body)
		}
	}
	after := testutil.CommandCalls(t, client)
	const marker = "core-cost-test-end"
	if err := client.Echo(context.Background(), marker).Err(); err != nil {
		t.Fatalf("ECHO: %v", err)
	}
	monitor.WaitFor(t, marker, 5*time.Second)

	if d := after["evalsha"] - before["evalsha"]; d != requests {
		t.Errorf("EVALSHA calls over %d requests = %d, want %d", requests, d, requests)
	}
	if d := after["eval"] - before["eval"]; d != 0 {
		t.Errorf("EVAL calls over %d requests = %d, want 0 once the script is loaded", requests, d)
	}

	// commandstats also counts the commands the script runs inside Redis,
	// so round trips are counted from MONITOR, which tags those as "lua".
	var fromGate []string
	for _, line := range monitor.Lines() {
		if strings.Contains(line, `"info"`) || strings.Contains(line, marker) {
			continue
		}
		fromGate = append(fromGate, line)
	}
	if len(fromGate) != requests {
		t.Errorf("commands sent by sessiongate over %d requests = %d, want %d:\n%s", requests, len(fromGate), requests, strings.Join(fromGate, "\n"))
	}
	for _, line := range fromGate {
		if !strings.Contains(line, `"evalsha"`) {
			t.Errorf("sessiongate sent %s, want only EVALSHA", line)
		}
	}
}

func TestRedisOutageFailsFastThenRecovers(t *testing.T) {
	s := startCoreStack(t, map[string]string{"REDIS_TIMEOUT": "250ms"})
	token := testutil.Token(t, "kate")
	if resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/", token, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("request before the outage = %d %s, want 200", resp.StatusCode, body)
	}

	s.redis.Stop()
	for attempt := 1; attempt <= 3; attempt++ {
		start := time.Now()
		resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/", token, nil)
		elapsed := time.Since(start)
		requireRejection(t, resp, body, http.StatusServiceUnavailable, "store_unavailable")
		if elapsed >= time.Second {
			t.Errorf("attempt %d: 503 took %v, want well under 1s with REDIS_TIMEOUT=250ms", attempt, elapsed)
		}
	}
	if resp, body := testutil.Do(t, http.MethodGet, s.gate.AdminURL+"/readyz", "", nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the outage = %d %s, want 503", resp.StatusCode, body)
	}

	// The restarted Redis is empty: the old token re-creates its session
	// because its iat is inside the create window, and a new token works.
	s.redis.Start()
	fresh := testutil.Token(t, "kate")
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, _ := testutil.Do(t, http.MethodGet, s.gate.URL+"/", fresh, nil)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("request 5s after Redis restarted = %d, want 200", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/", token, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("old token after restart = %d %s, want 200", resp.StatusCode, body)
	}
	if resp, body := testutil.Do(t, http.MethodGet, s.gate.AdminURL+"/readyz", "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz after restart = %d %s, want 200", resp.StatusCode, body)
	}
}

// busyScript keeps Redis busy for ARGV[1] milliseconds, so that every
// other client waits as it would on an overloaded server.
const busyScript = `
local function nowMS()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end
local stop = nowMS() + tonumber(ARGV[1])
while nowMS() < stop do end
return 1
`

func TestSlowRedisFailsWithinTimeout(t *testing.T) {
	s := startCoreStack(t, map[string]string{"REDIS_TIMEOUT": "250ms"})
	token := testutil.Token(t, "lily")
	if resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/", token, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("request before the stall = %d %s, want 200", resp.StatusCode, body)
	}

	busy := make(chan error, 1)
	go func() {
		busy <- s.redis.Client(coreDB).Eval(context.Background(), busyScript, nil, 1500).Err()
	}()
	time.Sleep(200 * time.Millisecond) // let the script start

	start := time.Now()
	resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/", token, nil)
	elapsed := time.Since(start)
	requireRejection(t, resp, body, http.StatusServiceUnavailable, "store_unavailable")
	if elapsed >= time.Second {
		t.Errorf("503 took %v while Redis was busy, want well under 1s with REDIS_TIMEOUT=250ms", elapsed)
	}

	if err := <-busy; err != nil {
		t.Fatalf("busy script: %v", err)
	}
	if resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/", token, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("request after the stall = %d %s, want 200", resp.StatusCode, body)
	}
}

func TestFailOpenForwardsWhileRedisDown(t *testing.T) {
	s := startCoreStack(t, map[string]string{"REDIS_FAILURE_MODE": "open", "REDIS_TIMEOUT": "250ms"})
	s.redis.Stop()
	token := testutil.Token(t, "leo")

	resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/", token, spoofHeaders())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET with Redis down in open mode = %d %s, want 200", resp.StatusCode, body)
	}
	requireIdentity(t, s.backend.Last(t).Header, "leo", token)
	if n := s.gate.CountLog(`"level":"warn"`, "session store failed", `"user_id":"leo"`); n == 0 {
		t.Errorf("no warning logged for the fail-open request; output:\n%s", s.gate.Output())
	}

	// Token checks still apply while the store is down.
	resp, body = testutil.Do(t, http.MethodGet, s.gate.URL+"/", "abc.def.ghi", nil)
	requireRejection(t, resp, body, http.StatusUnauthorized, "invalid_token")
}

func TestBackendDownGives502(t *testing.T) {
	s := startCoreStack(t, nil)
	s.backend.Stop()

	resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/", testutil.Token(t, "mia"), nil)
	requireRejection(t, resp, body, http.StatusBadGateway, "upstream_unavailable")
}

func TestServerSentEventsArriveIncrementally(t *testing.T) {
	s := startCoreStack(t, nil)
	req, err := http.NewRequest(http.MethodGet, s.gate.URL+"/sse", nil)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+testutil.Token(t, "nina"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /sse: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /sse = %d, want 200", resp.StatusCode)
	}

	reader := bufio.NewReader(resp.Body)
	first, err := reader.ReadString('\n')
	if err != nil {
		t.Fatalf("read first event: %v", err)
	}
	firstAt := time.Now()
	if first != "data: event 0\n" {
		t.Errorf("first line = %q, want %q", first, "data: event 0\n")
	}
	rest, err := io.ReadAll(reader)
	if err != nil {
		t.Fatalf("read rest of stream: %v", err)
	}
	// The backend sleeps 100ms after each of its three events, so the
	// stream still runs for about 200ms after the first event arrives.
	// A buffering proxy would deliver all events at once.
	if d := time.Since(firstAt); d < 100*time.Millisecond {
		t.Errorf("stream ended %v after the first event, want at least 100ms: the first event came late", d)
	}
	if !strings.Contains(string(rest), "data: event 2") {
		t.Errorf("rest of stream = %q, want events 1 and 2", rest)
	}
}

// zeroReader yields zero bytes forever.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestLargeUploadStreamsThrough(t *testing.T) {
	s := startCoreStack(t, nil)
	const size = 32 << 20
	// Without a length the client sends the body chunked, so neither side
	// can have buffered it beforehand.
	req, err := http.NewRequest(http.MethodPost, s.gate.URL+"/upload", io.NopCloser(io.LimitReader(zeroReader{}, size)))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+testutil.Token(t, "olga"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /upload: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /upload = %d %s, want 200", resp.StatusCode, body)
	}
	if string(body) != strconv.Itoa(size) {
		t.Errorf("backend counted %s bytes, want %d", body, size)
	}
}

func TestSIGTERMLetsInFlightRequestFinish(t *testing.T) {
	s := startCoreStack(t, nil)
	token := testutil.Token(t, "paul")

	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, s.gate.URL+"/slow?d=2s", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, body: string(body), err: err}
	}()

	deadline := time.Now().Add(5 * time.Second)
	for len(s.backend.Received()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("backend did not receive the slow request within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.gate.Signal(syscall.SIGTERM)

	// Readiness turns off while the request drains.
	readyDeadline := time.Now().Add(time.Second)
	for {
		resp, err := http.Get(s.gate.AdminURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				break
			}
		}
		if time.Now().After(readyDeadline) {
			t.Errorf("/readyz did not turn 503 within 1s of SIGTERM")
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("slow request failed during shutdown: %v", r.err)
		}
		if r.status != http.StatusOK || r.body != "slow done" {
			t.Errorf("slow request = %d %q, want 200 \"slow done\"", r.status, r.body)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("slow request did not finish within 8s of SIGTERM")
	}
	code, ok := s.gate.Wait(5 * time.Second)
	if !ok {
		t.Fatal("sessiongate did not exit within 5s after the request finished")
	}
	if code != 0 {
		t.Errorf("exit status = %d, want 0", code)
	}
}

func TestBadConfigExitsTwoNamingAll(t *testing.T) {
	env := map[string]string{
		"UPSTREAM_URL":       "http://127.0.0.1:1",
		"SESSION_LIFETIME":   "abc",
		"REDIS_FAILURE_MODE": "maybe",
	}
	code, output := testutil.RunOnce(t, env)
	if code != 2 {
		t.Errorf("exit status = %d, want 2; output:\n%s", code, output)
	}
	for _, want := range []string{"SESSION_LIFETIME", `"abc"`, "REDIS_FAILURE_MODE", `"maybe"`, "JWT_SECRET"} {
		if !strings.Contains(output, want) {
			t.Errorf("output does not contain %s:\n%s", want, output)
		}
	}
}

func TestBadConfigurationHidesSecretValue(t *testing.T) {
	env := map[string]string{
		"UPSTREAM_URL": "http://127.0.0.1:1",
		"JWT_SECRET":   "too-short-secret",
	}
	code, output := testutil.RunOnce(t, env)
	if code != 2 {
		t.Errorf("exit status = %d, want 2; output:\n%s", code, output)
	}
	if !strings.Contains(output, "JWT_SECRET") {
		t.Errorf("output does not name JWT_SECRET:\n%s", output)
	}
	if strings.Contains(output, "too-short-secret") {
		t.Errorf("output shows the secret:\n%s", output)
	}
}

func TestStartupLogRedactsSecrets(t *testing.T) {
	s := startCoreStack(t, map[string]string{"ADMIN_TOKEN": "admin-token-value-for-log-test"})
	output := s.gate.Output()
	if !strings.Contains(output, `"msg":"configuration"`) {
		t.Fatalf("no configuration log line in:\n%s", output)
	}
	for _, secret := range []string{testutil.Secret, "admin-token-value-for-log-test"} {
		if strings.Contains(output, secret) {
			t.Errorf("log output contains the secret %q", secret)
		}
	}
}

func TestVersionAndHealthcheckSubcommands(t *testing.T) {
	code, output := testutil.RunOnce(t, nil, "version")
	if code != 0 || !strings.HasPrefix(output, "sessiongate ") {
		t.Errorf("sessiongate version = %d %q, want 0 and \"sessiongate <version>\"", code, output)
	}

	code, output = testutil.RunOnce(t, nil, "no-such-command")
	if code != 2 {
		t.Errorf("sessiongate no-such-command exit status = %d, want 2; output %q", code, output)
	}

	s := startCoreStack(t, nil)
	adminAddr := strings.TrimPrefix(s.gate.AdminURL, "http://")
	if code, output := testutil.RunOnce(t, map[string]string{"ADMIN_ADDR": adminAddr}, "healthcheck"); code != 0 {
		t.Errorf("healthcheck against a running gate = %d %q, want 0", code, output)
	}

	closed := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	if code, output := testutil.RunOnce(t, map[string]string{"ADMIN_ADDR": closed}, "healthcheck"); code != 1 {
		t.Errorf("healthcheck against a closed port = %d %q, want 1", code, output)
	}
}
