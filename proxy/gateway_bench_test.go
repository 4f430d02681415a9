package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/configs"
	"github.com/sessiongate/sessiongate/internal/testutil"
	"github.com/sessiongate/sessiongate/sessions"
)

const benchSecret = "gateway-bench-secret-0123456789a"

const benchUserAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"

// benchGateway builds a Gateway in front of an httptest backend that
// returns a short body. With redisURL empty it uses the memory store.
func benchGateway(b *testing.B, redisURL string) *Gateway {
	b.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"ok"}`))
	}))
	b.Cleanup(backend.Close)

	env := map[string]string{
		"UPSTREAM_URL":  backend.URL,
		"JWT_SECRET":    benchSecret,
		"SESSION_STORE": "memory",
	}
	if redisURL != "" {
		env["SESSION_STORE"], env["REDIS_URL"] = "redis", redisURL
	}
	cfg, err := configs.LoadFrom(env)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		b.Fatalf("configuration: %v", err)
	}
	verifier, err := sessions.OpenVerifier(context.Background(), cfg, zap.NewNop())
	if err != nil {
		b.Fatalf("OpenVerifier: %v", err)
	}
	store, err := sessions.OpenStore(cfg)
	if err != nil {
		b.Fatalf("OpenStore: %v", err)
	}
	b.Cleanup(func() { store.Close() })
	g, err := NewGateway(Options{Config: cfg, Verifier: verifier, Store: store, Logger: zap.NewNop()})
	if err != nil {
		b.Fatalf("NewGateway: %v", err)
	}
	return g
}

func benchBearerTokens(b *testing.B, n int) []string {
	b.Helper()
	now := time.Now()
	out := make([]string, n)
	for i := range out {
		token := testutil.SignWith(b, jwt.SigningMethodHS256, []byte(benchSecret), jwt.MapClaims{
			"sub":   fmt.Sprintf("user-%d", i),
			"email": fmt.Sprintf("user-%d@example.test", i),
			"iat":   now.Unix(),
			"exp":   now.Add(time.Hour).Unix(),
		})
		out[i] = "Bearer " + token
	}
	return out
}

// serveBench sends requests with the given Authorization values through g
// in turn, after one request per value that creates its session.
func serveBench(b *testing.B, g *Gateway, auths []string) {
	b.Helper()
	send := func(auth string) int {
		r := httptest.NewRequest(http.MethodGet, "/api/items", nil)
		r.RemoteAddr = "203.0.113.7:51000"
		r.Header.Set("Authorization", auth)
		r.Header.Set("User-Agent", benchUserAgent)
		r.Header.Set("X-User-Id", "forged")
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		return w.Code
	}
	for _, auth := range auths {
		if code := send(auth); code != http.StatusOK {
			b.Fatalf("create session: status %d, want 200", code)
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if code := send(auths[i%len(auths)]); code != http.StatusOK {
			b.Fatalf("ServeHTTP: status %d, want 200", code)
		}
	}
}

// BenchmarkGatewayServeHTTP measures one accepted request through the
// whole handler: token check, session refresh, header rewrite and the
// round trip to a loopback backend. The allocations include those of
// httptest's request and recorder.
func BenchmarkGatewayServeHTTP(b *testing.B) {
	auths := benchBearerTokens(b, 1000)
	b.Run("memory", func(b *testing.B) {
		serveBench(b, benchGateway(b, ""), auths)
	})
	b.Run("redis", func(b *testing.B) {
		srv := testutil.StartRedis(b)
		serveBench(b, benchGateway(b, srv.URL(2)), auths)
	})
}

// BenchmarkRewriteHeaders measures stripping client-supplied identity
// headers and setting the verified ones on a browser-sized header set.
func BenchmarkRewriteHeaders(b *testing.B) {
	g := benchGateway(b, "")
	upstream, _ := url.Parse("http://127.0.0.1:8000")
	in := httptest.NewRequest(http.MethodGet, "/api/items", nil)
	in.RemoteAddr = "203.0.113.7:51000"
	for name, value := range map[string]string{
		"Authorization":   "Bearer x",
		"User-Agent":      benchUserAgent,
		"Accept":          "application/json",
		"Accept-Encoding": "gzip, deflate, br",
		"Accept-Language": "en-GB,en;q=0.9",
		"Cookie":          "theme=dark; lang=en",
		"Referer":         "https://app.example.test/dashboard",
		"X-User-Id":       "forged",
		"X_User_Email":    "forged@example.test",
	} {
		in.Header.Set(name, value)
	}
	id := &identity{claims: sessions.Claims{UserID: "user-1", Email: "user-1@example.test"}, sessionID: "AAAAAAAAAAAAAAAAAAAAAA", clientIP: "203.0.113.7"}
	in = in.WithContext(context.WithValue(in.Context(), identityKey{}, id))

	b.ReportAllocs()
	for b.Loop() {
		out := in.Clone(in.Context())
		pr := &httputil.ProxyRequest{In: in, Out: out}
		pr.SetURL(upstream)
		g.rewriteHeaders(pr)
		if out.Header.Get("X-User-Id") != "user-1" {
			b.Fatalf("X-User-Id = %q, want user-1", out.Header.Get("X-User-Id"))
		}
	}
}
