package sessions_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sessiongate/sessiongate/sessions"
)

const hmacSecret = "token-test-secret-0123456789abcd"

// testKeys are generated once because RSA key generation is slow under
// the race detector.
type testKeys struct {
	rsa   *rsa.PrivateKey
	ec256 *ecdsa.PrivateKey
	ec384 *ecdsa.PrivateKey
	ed    ed25519.PrivateKey
}

var (
	keysOnce sync.Once
	keys     testKeys
)

func loadKeys(t *testing.T) testKeys {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if keys.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if keys.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if keys.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
			panic(err)
		}
		if _, keys.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
	})
	return keys
}

// fixedNow is the verifier's clock in these tests.
var fixedNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func baseClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"sub":   "user-1",
		"email": "user-1@example.test",
		"iat":   fixedNow.Add(-time.Minute).Unix(),
		"exp":   fixedNow.Add(time.Hour).Unix(),
	}
}

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s token: %v", method.Alg(), err)
	}
	return s
}

func newVerifier(t *testing.T, cfg sessions.VerifierConfig) *sessions.Verifier {
	t.Helper()
	if cfg.Key == nil {
		cfg.Key = []byte(hmacSecret)
	}
	if cfg.EmailClaim == "" {
		cfg.EmailClaim = "email"
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return fixedNow }
	}
	v, err := sessions.NewVerifier(cfg)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func verify(v *sessions.Verifier, token string) (sessions.Claims, error) {
	return v.Verify(token, sessions.TokenDigest(token))
}

func TestVerifierAcceptsEveryKeyFamily(t *testing.T) {
	k := loadKeys(t)
	tests := []struct {
		name      string
		method    jwt.SigningMethod
		signKey   any
		verifyKey any
	}{
		{"HS256", jwt.SigningMethodHS256, []byte(hmacSecret), []byte(hmacSecret)},
		{"HS384", jwt.SigningMethodHS384, []byte(hmacSecret), []byte(hmacSecret)},
		{"HS512", jwt.SigningMethodHS512, []byte(hmacSecret), []byte(hmacSecret)},
		{"RS256", jwt.SigningMethodRS256, k.rsa, &k.rsa.PublicKey},
		{"RS512", jwt.SigningMethodRS512, k.rsa, &k.rsa.PublicKey},
		{"PS256", jwt.SigningMethodPS256, k.rsa, &k.rsa.PublicKey},
		{"ES256", jwt.SigningMethodES256, k.ec256, &k.ec256.PublicKey},
		{"ES384", jwt.SigningMethodES384, k.ec384, &k.ec384.PublicKey},
		{"EdDSA", jwt.SigningMethodEdDSA, k.ed, k.ed.Public()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerifier(t, sessions.VerifierConfig{Key: tt.verifyKey, RequireIAT: true})
			got, err := verify(v, sign(t, tt.method, tt.signKey, baseClaims()))
			if err != nil {
				t.Fatalf("Verify(%s token) error = %v", tt.name, err)
			}
			if got.UserID != "user-1" || got.Email != "user-1@example.test" {
				t.Errorf("Verify(%s token) identity = %q, %q; want user-1, user-1@example.test", tt.name, got.UserID, got.Email)
			}
			if want := fixedNow.Add(time.Hour); !got.ExpiresAt.Equal(want) {
				t.Errorf("ExpiresAt = %v, want %v", got.ExpiresAt, want)
			}
		})
	}
}

// An algorithm outside the allow-list must fail even when its signature is
// valid: "none" needs no key, and an HMAC token signed with the public
// key's PEM bytes would pass a verifier that let the token pick the
// algorithm.
func TestVerifierRejectsAlgorithmsOutsideAllowList(t *testing.T) {
	k := loadKeys(t)
	publicPEM := publicKeyPEM(t, &k.rsa.PublicKey)

	tests := []struct {
		name   string
		key    any
		allow  []string
		method jwt.SigningMethod
		signer any
	}{
		{"none with HMAC key", []byte(hmacSecret), nil, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType},
		{"none with RSA key", &k.rsa.PublicKey, nil, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType},
		{"HS256 signed with RSA public PEM", &k.rsa.PublicKey, nil, jwt.SigningMethodHS256, publicPEM},
		{"HS384 when only HS256 allowed", []byte(hmacSecret), []string{"HS256"}, jwt.SigningMethodHS384, []byte(hmacSecret)},
		{"PS256 when only RS256 allowed", &k.rsa.PublicKey, []string{"RS256"}, jwt.SigningMethodPS256, k.rsa},
		{"RS256 with ECDSA key", &k.ec256.PublicKey, nil, jwt.SigningMethodRS256, k.rsa},
		{"ES384 with P-256 key", &k.ec256.PublicKey, nil, jwt.SigningMethodES384, k.ec384},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerifier(t, sessions.VerifierConfig{Key: tt.key, Algorithms: tt.allow, RequireIAT: true})
			_, err := verify(v, sign(t, tt.method, tt.signer, baseClaims()))
			if !errors.Is(err, sessions.ErrInvalidToken) {
				t.Fatalf("Verify error = %v, want ErrInvalidToken", err)
			}
			if !errors.Is(err, jwt.ErrTokenSignatureInvalid) && !errors.Is(err, jwt.ErrTokenUnverifiable) {
				t.Errorf("Verify error = %v, want it to wrap a golang-jwt signature error", err)
			}
		})
	}
}

func TestNewVerifierRejectsForeignAlgorithm(t *testing.T) {
	k := loadKeys(t)
	tests := []struct {
		name  string
		key   any
		allow []string
	}{
		{"HS256 with RSA key", &k.rsa.PublicKey, []string{"HS256"}},
		{"RS256 with HMAC secret", []byte(hmacSecret), []string{"RS256"}},
		{"ES384 with P-256 key", &k.ec256.PublicKey, []string{"ES384"}},
		{"none with HMAC secret", []byte(hmacSecret), []string{"none"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := sessions.NewVerifier(sessions.VerifierConfig{Key: tt.key, Algorithms: tt.allow}); err == nil {
				t.Errorf("NewVerifier(%v) error = nil, want an error", tt.allow)
			}
		})
	}
}

func TestNewVerifierRejectsEmptySecret(t *testing.T) {
	if _, err := sessions.NewVerifier(sessions.VerifierConfig{Key: []byte{}}); err == nil {
		t.Error("NewVerifier(empty secret) error = nil, want an error")
	}
}

func TestVerifierTimeClaims(t *testing.T) {
	const leeway = 30 * time.Second
	at := func(d time.Duration) int64 { return fixedNow.Add(d).Unix() }
	tests := []struct {
		name    string
		set     jwt.MapClaims
		drop    string
		wantErr error // nil means accepted
	}{
		{name: "exp well ahead", set: jwt.MapClaims{"exp": at(time.Hour)}},
		{name: "exp passed within leeway", set: jwt.MapClaims{"exp": at(-20 * time.Second)}},
		{name: "exp passed beyond leeway", set: jwt.MapClaims{"exp": at(-40 * time.Second)}, wantErr: jwt.ErrTokenExpired},
		{name: "exp missing", drop: "exp", wantErr: jwt.ErrTokenRequiredClaimMissing},
		{name: "nbf ahead within leeway", set: jwt.MapClaims{"nbf": at(20 * time.Second)}},
		{name: "nbf ahead beyond leeway", set: jwt.MapClaims{"nbf": at(40 * time.Second)}, wantErr: jwt.ErrTokenNotValidYet},
		{name: "nbf passed", set: jwt.MapClaims{"nbf": at(-time.Minute)}},
		{name: "iat ahead within leeway", set: jwt.MapClaims{"iat": at(20 * time.Second)}},
		{name: "iat ahead beyond leeway", set: jwt.MapClaims{"iat": at(40 * time.Second)}, wantErr: jwt.ErrTokenUsedBeforeIssued},
		{name: "exp as string", set: jwt.MapClaims{"exp": "tomorrow"}, wantErr: jwt.ErrInvalidType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims := baseClaims()
			for k, v := range tt.set {
				claims[k] = v
			}
			delete(claims, tt.drop)
			v := newVerifier(t, sessions.VerifierConfig{Leeway: leeway, RequireIAT: true})

			_, err := verify(v, sign(t, jwt.SigningMethodHS256, []byte(hmacSecret), claims))
			if tt.wantErr == nil {
				if err != nil {
					t.Errorf("Verify error = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, sessions.ErrInvalidToken) || !errors.Is(err, tt.wantErr) {
				t.Errorf("Verify error = %v, want ErrInvalidToken wrapping %v", err, tt.wantErr)
			}
		})
	}
}

func TestVerifierIssuedAtRequirement(t *testing.T) {
	tests := []struct {
		name       string
		requireIAT bool
		wantOK     bool
	}{
		{"required", true, false},
		{"optional", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims := baseClaims()
			delete(claims, "iat")
			v := newVerifier(t, sessions.VerifierConfig{RequireIAT: tt.requireIAT})

			got, err := verify(v, sign(t, jwt.SigningMethodHS256, []byte(hmacSecret), claims))
			if tt.wantOK {
				if err != nil {
					t.Fatalf("Verify(no iat, RequireIAT=false) error = %v, want nil", err)
				}
				if !got.IssuedAt.IsZero() {
					t.Errorf("IssuedAt = %v, want zero for a token without iat", got.IssuedAt)
				}
				return
			}
			if !errors.Is(err, sessions.ErrInvalidToken) {
				t.Errorf("Verify(no iat, RequireIAT=true) error = %v, want ErrInvalidToken", err)
			}
		})
	}
}

func TestVerifierIssuerAndAudience(t *testing.T) {
	tests := []struct {
		name     string
		issuer   string
		audience []string
		set      jwt.MapClaims
		wantErr  error
	}{
		{name: "issuer matches", issuer: "https://login.test", set: jwt.MapClaims{"iss": "https://login.test"}},
		{name: "issuer differs", issuer: "https://login.test", set: jwt.MapClaims{"iss": "https://evil.test"}, wantErr: jwt.ErrTokenInvalidIssuer},
		{name: "issuer missing", issuer: "https://login.test", wantErr: jwt.ErrTokenRequiredClaimMissing},
		{name: "audience string matches", audience: []string{"api"}, set: jwt.MapClaims{"aud": "api"}},
		{name: "audience array contains", audience: []string{"api"}, set: jwt.MapClaims{"aud": []string{"web", "api"}}},
		{name: "second configured audience", audience: []string{"api", "admin"}, set: jwt.MapClaims{"aud": "admin"}},
		{name: "audience string differs", audience: []string{"api"}, set: jwt.MapClaims{"aud": "web"}, wantErr: jwt.ErrTokenInvalidAudience},
		{name: "audience array lacks", audience: []string{"api"}, set: jwt.MapClaims{"aud": []string{"web", "mobile"}}, wantErr: jwt.ErrTokenInvalidAudience},
		{name: "audience missing", audience: []string{"api"}, wantErr: jwt.ErrTokenRequiredClaimMissing},
		{name: "audience not checked when unset", set: jwt.MapClaims{"aud": "anything"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims := baseClaims()
			for k, v := range tt.set {
				claims[k] = v
			}
			v := newVerifier(t, sessions.VerifierConfig{Issuer: tt.issuer, Audience: tt.audience, RequireIAT: true})

			_, err := verify(v, sign(t, jwt.SigningMethodHS256, []byte(hmacSecret), claims))
			if tt.wantErr == nil {
				if err != nil {
					t.Errorf("Verify error = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, sessions.ErrInvalidToken) || !errors.Is(err, tt.wantErr) {
				t.Errorf("Verify error = %v, want ErrInvalidToken wrapping %v", err, tt.wantErr)
			}
		})
	}
}

func TestVerifierUserIDClaim(t *testing.T) {
	tests := []struct {
		name    string
		sub     any
		want    string
		wantErr bool
	}{
		{name: "string", sub: "alice", want: "alice"},
		{name: "whole number", sub: 42, want: "42"},
		{name: "large whole number", sub: int64(9007199254740991), want: "9007199254740991"},
		{name: "missing", sub: nil, wantErr: true},
		{name: "empty string", sub: "", wantErr: true},
		{name: "object", sub: map[string]any{"id": 1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims := baseClaims()
			delete(claims, "sub")
			if tt.sub != nil {
				claims["sub"] = tt.sub
			}
			v := newVerifier(t, sessions.VerifierConfig{RequireIAT: true})

			got, err := verify(v, sign(t, jwt.SigningMethodHS256, []byte(hmacSecret), claims))
			if tt.wantErr {
				if !errors.Is(err, sessions.ErrInvalidToken) {
					t.Errorf("Verify(sub=%v) error = %v, want ErrInvalidToken", tt.sub, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify(sub=%v) error = %v", tt.sub, err)
			}
			if got.UserID != tt.want {
				t.Errorf("UserID = %q, want %q", got.UserID, tt.want)
			}
		})
	}
}

func TestVerifierCustomClaimsAndForwarding(t *testing.T) {
	claims := baseClaims()
	claims["uid"] = 7
	claims["mail"] = "seven@example.test"
	claims["role"] = "admin"
	claims["tenant"] = 12
	v := newVerifier(t, sessions.VerifierConfig{
		RequireIAT:    true,
		UserIDClaim:   "uid",
		EmailClaim:    "mail",
		ForwardClaims: []string{"role", "tenant", "absent"},
	})

	got, err := verify(v, sign(t, jwt.SigningMethodHS256, []byte(hmacSecret), claims))
	if err != nil {
		t.Fatalf("Verify error = %v", err)
	}
	if got.UserID != "7" || got.Email != "seven@example.test" {
		t.Errorf("identity = %q, %q; want 7, seven@example.test", got.UserID, got.Email)
	}
	if got.Forward["role"] != "admin" || got.Forward["tenant"] != "12" {
		t.Errorf("Forward = %v, want role=admin tenant=12", got.Forward)
	}
	if _, ok := got.Forward["absent"]; ok {
		t.Errorf("Forward = %v, want no entry for a claim the token lacks", got.Forward)
	}
}

func TestVerifierRejectsTamperedAndMalformedTokens(t *testing.T) {
	v := newVerifier(t, sessions.VerifierConfig{RequireIAT: true})
	good := sign(t, jwt.SigningMethodHS256, []byte(hmacSecret), baseClaims())
	tests := map[string]string{
		"other secret":   sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdefg"), baseClaims()),
		"cut signature":  good[:len(good)-4],
		"not a jwt":      "not-a-token",
		"two segments":   "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0",
		"empty":          "",
		"garbage base64": "%%%.%%%.%%%",
	}
	for name, token := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := verify(v, token); !errors.Is(err, sessions.ErrInvalidToken) {
				t.Errorf("Verify(%q) error = %v, want ErrInvalidToken", token, err)
			}
		})
	}
}

// The cache must not extend a token's life: once exp (plus leeway) has
// passed, a token verified earlier is rejected like any other.
func TestVerifierCacheNeverOutlivesExpiry(t *testing.T) {
	now := fixedNow
	var mu sync.Mutex
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	v := newVerifier(t, sessions.VerifierConfig{RequireIAT: true, CacheEntries: 100, Now: clock})
	claims := baseClaims()
	claims["exp"] = fixedNow.Add(10 * time.Second).Unix()
	token := sign(t, jwt.SigningMethodHS256, []byte(hmacSecret), claims)

	for i := range 3 {
		if _, err := verify(v, token); err != nil {
			t.Fatalf("Verify #%d before exp error = %v", i+1, err)
		}
	}

	mu.Lock()
	now = fixedNow.Add(10 * time.Second)
	mu.Unlock()
	if _, err := verify(v, token); !errors.Is(err, jwt.ErrTokenExpired) {
		t.Errorf("Verify at exp after cached verifications error = %v, want ErrTokenExpired", err)
	}
}

func TestVerifierCacheDoesNotAcceptWrongDigest(t *testing.T) {
	v := newVerifier(t, sessions.VerifierConfig{RequireIAT: true, CacheEntries: 100})
	good := sign(t, jwt.SigningMethodHS256, []byte(hmacSecret), baseClaims())
	if _, err := verify(v, good); err != nil {
		t.Fatalf("Verify(good) error = %v", err)
	}

	forged := sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdefg"), baseClaims())
	if _, err := verify(v, forged); !errors.Is(err, sessions.ErrInvalidToken) {
		t.Errorf("Verify(forged) after caching a good token error = %v, want ErrInvalidToken", err)
	}
}

func publicKeyPEM(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		t.Fatalf("marshal public key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestLoadPublicKeyFormats(t *testing.T) {
	k := loadKeys(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatalf("write %s: %v", name, err)
		}
		return path
	}

	tests := []struct {
		name    string
		data    []byte
		wantErr bool
	}{
		{name: "PKIX RSA", data: publicKeyPEM(t, &k.rsa.PublicKey)},
		{name: "PKCS1 RSA", data: pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})},
		{name: "PKIX ECDSA", data: publicKeyPEM(t, &k.ec256.PublicKey)},
		{name: "PKIX Ed25519", data: publicKeyPEM(t, k.ed.Public())},
		{name: "not PEM", data: []byte("hello"), wantErr: true},
		{name: "private key block", data: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := sessions.LoadPublicKey(write(tt.name+".pem", tt.data))
			if tt.wantErr {
				if err == nil {
					t.Errorf("LoadPublicKey error = nil, want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadPublicKey error = %v", err)
			}
			if _, err := sessions.NewVerifier(sessions.VerifierConfig{Key: key}); err != nil {
				t.Errorf("NewVerifier(loaded %T) error = %v", key, err)
			}
		})
	}
}
