package testutil

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Secret is the HMAC secret tests share; 32 bytes, as HS256 requires.
const Secret = "test-secret-0123456789abcdef0123"

// Claims returns the claims of a fresh token for user: iat now, exp in an
// hour, an email, and a unique jti so that each token names its own session.
func Claims(user string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"sub":   user,
		"email": user + "@example.test",
		"iat":   now.Unix(),
		"exp":   now.Add(time.Hour).Unix(),
		"jti":   jtiCounter(),
	}
}

var jtiSeq atomic.Int64

func jtiCounter() int64 {
	return time.Now().UnixNano() + jtiSeq.Add(1)
}

// Sign signs claims with HS256 and Secret.
func Sign(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	return SignWith(t, jwt.SigningMethodHS256, []byte(Secret), claims)
}

// SignWith signs claims with any method and key.
func SignWith(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign token: %v", err)
	}
	return s
}

// Token returns a fresh HS256 token for user.
func Token(t testing.TB, user string) string {
	t.Helper()
	return Sign(t, Claims(user))
}
