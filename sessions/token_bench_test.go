package sessions_test

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sessiongate/sessiongate/sessions"
)

// benchTokenCount is how many distinct tokens the cached benchmarks rotate
// over, the number of sessions the load benchmark uses.
const benchTokenCount = 1000

// benchTokens signs n tokens of distinct users with method and key.
func benchTokens(b *testing.B, n int, method jwt.SigningMethod, key any) []string {
	b.Helper()
	now := time.Now()
	out := make([]string, n)
	for i := range out {
		claims := jwt.MapClaims{
			"sub":   fmt.Sprintf("user-%d", i),
			"email": fmt.Sprintf("user-%d@example.test", i),
			"iat":   now.Unix(),
			"exp":   now.Add(time.Hour).Unix(),
		}
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			b.Fatalf("sign %s token: %v", method.Alg(), err)
		}
		out[i] = s
	}
	return out
}

func benchVerifier(b *testing.B, key any, cacheEntries int) *sessions.Verifier {
	b.Helper()
	v, err := sessions.NewVerifier(sessions.VerifierConfig{
		Key:          key,
		EmailClaim:   "email",
		RequireIAT:   true,
		Leeway:       30 * time.Second,
		CacheEntries: cacheEntries,
	})
	if err != nil {
		b.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// runVerify verifies tokens in turn, digest included, as the gateway does
// for each request.
func runVerify(b *testing.B, v *sessions.Verifier, tokens []string) {
	b.Helper()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		token := tokens[i%len(tokens)]
		if _, err := v.Verify(token, sessions.TokenDigest(token)); err != nil {
			b.Fatalf("Verify: %v", err)
		}
	}
}

var benchRSAKey *rsa.PrivateKey

func rsaBenchKey(b *testing.B) *rsa.PrivateKey {
	b.Helper()
	if benchRSAKey == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			b.Fatalf("generate RSA key: %v", err)
		}
		benchRSAKey = k
	}
	return benchRSAKey
}

// BenchmarkVerify measures one token verification per operation. With the
// cache off every call parses the token and checks its signature. With it
// on, every token was verified once before timing starts.
func BenchmarkVerify(b *testing.B) {
	secret := []byte("bench-secret-0123456789abcdef012")
	rsaKey := rsaBenchKey(b)
	hsTokens := benchTokens(b, benchTokenCount, jwt.SigningMethodHS256, secret)
	rsTokens := benchTokens(b, benchTokenCount, jwt.SigningMethodRS256, rsaKey)

	cases := []struct {
		name   string
		key    any
		tokens []string
		cache  int
	}{
		{name: "HS256/uncached", key: secret, tokens: hsTokens, cache: 0},
		{name: "HS256/cached", key: secret, tokens: hsTokens, cache: 10000},
		{name: "RS256/uncached", key: &rsaKey.PublicKey, tokens: rsTokens, cache: 0},
		{name: "RS256/cached", key: &rsaKey.PublicKey, tokens: rsTokens, cache: 10000},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			v := benchVerifier(b, tc.key, tc.cache)
			for _, token := range tc.tokens {
				if _, err := v.Verify(token, sessions.TokenDigest(token)); err != nil {
					b.Fatalf("warm Verify: %v", err)
				}
			}
			runVerify(b, v, tc.tokens)
		})
	}
}

// BenchmarkVerifyCachedParallel measures cache hits from every CPU at
// once, which is where lock contention on the cache would show.
func BenchmarkVerifyCachedParallel(b *testing.B) {
	secret := []byte("bench-secret-0123456789abcdef012")
	tokens := benchTokens(b, benchTokenCount, jwt.SigningMethodHS256, secret)
	v := benchVerifier(b, secret, 10000)
	for _, token := range tokens {
		if _, err := v.Verify(token, sessions.TokenDigest(token)); err != nil {
			b.Fatalf("warm Verify: %v", err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			token := tokens[i%len(tokens)]
			i++
			if _, err := v.Verify(token, sessions.TokenDigest(token)); err != nil {
				b.Errorf("Verify: %v", err)
				return
			}
		}
	})
}

// BenchmarkSessionID measures deriving the cache key and session id from
// a raw token.
func BenchmarkSessionID(b *testing.B) {
	token := benchTokens(b, 1, jwt.SigningMethodHS256, []byte("bench-secret-0123456789abcdef012"))[0]
	b.ReportAllocs()
	for b.Loop() {
		_ = sessions.SessionID(sessions.TokenDigest(token))
	}
}
