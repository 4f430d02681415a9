package sessions

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalidToken marks every verification failure. The wrapped error keeps
// golang-jwt's, so errors.Is(err, jwt.ErrTokenExpired) still works.
var ErrInvalidToken = errors.New("invalid token")

// Claims is the verified identity of a token.
type Claims struct {
	UserID string
	Email  string
	// IssuedAt and ExpiresAt are zero when the token has no iat or exp.
	IssuedAt  time.Time
	ExpiresAt time.Time
	// Forward holds the string form of the claims named in
	// VerifierConfig.ForwardClaims that the token carries.
	Forward map[string]string
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Key is an HMAC secret ([]byte) or a public key (*rsa.PublicKey,
	// *ecdsa.PublicKey, ed25519.PublicKey). Ignored when Keyfunc is set.
	Key any
	// Keyfunc, when set, finds the key per token, as a JWKS client does.
	// Only asymmetric algorithms are then allowed, so that a JWK Set can
	// never turn a public key into an HMAC secret.
	Keyfunc jwt.Keyfunc
	// CacheTTL caps how long a verified token is reused; 0 means until its
	// exp. With a JWKS it bounds how long a removed key keeps working.
	CacheTTL time.Duration
	// Algorithms is the allow-list; empty means the key's family.
	Algorithms []string
	Issuer     string
	// Audience lists accepted audiences; a token must name one of them.
	Audience   []string
	Leeway     time.Duration
	RequireIAT bool
	// UserIDClaim and EmailClaim name the claims of the identity headers.
	UserIDClaim   string
	EmailClaim    string
	ForwardClaims []string
	// CacheEntries bounds the cache of verified tokens; 0 turns it off.
	CacheEntries int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Verifier checks a token's signature, algorithm and time claims and
// extracts its identity. It is safe for concurrent use.
type Verifier struct {
	cfg    VerifierConfig
	parser *jwt.Parser
	cache  *tokenCache
}

// NewVerifier checks that the algorithms fit the key and returns a Verifier.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	family := asymmetricAlgorithms
	if cfg.Keyfunc == nil {
		var err error
		if family, err = keyFamily(cfg.Key); err != nil {
			return nil, err
		}
		key := cfg.Key
		cfg.Keyfunc = func(*jwt.Token) (any, error) { return key, nil }
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = family
	}
	for _, alg := range cfg.Algorithms {
		// An algorithm of another family would let, for example, an HS256
		// token signed with the RSA public key's bytes pass.
		if !slices.Contains(family, alg) {
			return nil, fmt.Errorf("algorithm %s does not fit the configured key, which accepts %v", alg, family)
		}
	}
	if cfg.UserIDClaim == "" {
		cfg.UserIDClaim = "sub"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}

	opts := []jwt.ParserOption{
		jwt.WithValidMethods(cfg.Algorithms),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(cfg.Now),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if len(cfg.Audience) > 0 {
		opts = append(opts, jwt.WithAudience(cfg.Audience...))
	}
	v := &Verifier{cfg: cfg, parser: jwt.NewParser(opts...)}
	if cfg.CacheEntries > 0 {
		v.cache = newTokenCache(cfg.CacheEntries)
	}
	return v, nil
}

// asymmetricAlgorithms are the algorithms a JWK Set may serve keys for.
var asymmetricAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

func keyFamily(key any) ([]string, error) {
	switch k := key.(type) {
	case []byte:
		if len(k) == 0 {
			return nil, errors.New("empty HMAC secret")
		}
		return []string{"HS256", "HS384", "HS512"}, nil
	case *rsa.PublicKey:
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, nil
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return []string{"ES256"}, nil
		case 384:
			return []string{"ES384"}, nil
		case 521:
			return []string{"ES512"}, nil
		}
		return nil, fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return []string{"EdDSA"}, nil
	}
	return nil, fmt.Errorf("unsupported key type %T", key)
}

// LoadPublicKey reads a PEM file holding a PKIX public key, a PKCS #1 RSA
// public key or a certificate.
func LoadPublicKey(path string) (any, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("read public key %s: no PEM block found", path)
	}
	switch block.Type {
	case "PUBLIC KEY":
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key %s: %w", path, err)
		}
		return key, nil
	case "RSA PUBLIC KEY":
		key, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse RSA public key %s: %w", path, err)
		}
		return key, nil
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %s: %w", path, err)
		}
		return cert.PublicKey, nil
	}
	return nil, fmt.Errorf("read public key %s: PEM block %q is not a public key or certificate", path, block.Type)
}

// Verify checks token and returns its identity. digest must be
// TokenDigest(token); it keys the cache, so a token is verified once and
// its claims reused until its exp. Every failure wraps ErrInvalidToken.
func (v *Verifier) Verify(token string, digest [sha256.Size]byte) (Claims, error) {
	now := v.cfg.Now()
	if v.cache != nil {
		if c, ok := v.cache.get(digest, now); ok {
			return c, nil
		}
	}

	var mc jwt.MapClaims
	_, err := v.parser.ParseWithClaims(token, &mc, v.cfg.Keyfunc)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	c, err := v.identity(mc)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}

	if v.cache != nil {
		// Cached no longer than exp plus leeway, the same bound the parser
		// applies.
		until := c.ExpiresAt.Add(v.cfg.Leeway)
		if v.cfg.CacheTTL > 0 && now.Add(v.cfg.CacheTTL).Before(until) {
			until = now.Add(v.cfg.CacheTTL)
		}
		v.cache.put(digest, c, until)
	}
	return c, nil
}

func (v *Verifier) identity(mc jwt.MapClaims) (Claims, error) {
	var c Claims
	raw := mc[v.cfg.UserIDClaim]
	_, isBool := raw.(bool)
	userID, ok := claimString(raw)
	if !ok || isBool || userID == "" {
		return c, fmt.Errorf("claim %q is missing or not a string or number", v.cfg.UserIDClaim)
	}
	c.UserID = userID
	if v.cfg.EmailClaim != "" {
		c.Email, _ = claimString(mc[v.cfg.EmailClaim])
	}
	if iat, err := mc.GetIssuedAt(); err == nil && iat != nil {
		c.IssuedAt = iat.Time
	} else if v.cfg.RequireIAT {
		return c, errors.New("claim \"iat\" is required")
	}
	if exp, err := mc.GetExpirationTime(); err == nil && exp != nil {
		c.ExpiresAt = exp.Time
	}
	for _, name := range v.cfg.ForwardClaims {
		if s, ok := claimString(mc[name]); ok {
			if c.Forward == nil {
				c.Forward = map[string]string{}
			}
			c.Forward[name] = s
		}
	}
	return c, nil
}

// claimString returns a string claim, or a whole-number claim in decimal
// (Laravel issues "sub" as a number in some set-ups).
func claimString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return strconv.FormatInt(int64(x), 10), true
		}
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}
