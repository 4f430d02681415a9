// Package configs binds sessiongate's settings to environment variables and
// validates them. It imports no other package of this module.
package configs

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Minutes is a duration that also accepts a bare integer, read as minutes,
// because Laravel's SESSION_LIFETIME is written that way ("120").
type Minutes time.Duration

// UnmarshalText parses "120" as 120 minutes and anything else as a Go
// duration such as "2h" or "90s".
func (m *Minutes) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*m = Minutes(time.Duration(n) * time.Minute)
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a Go duration such as 2h or a whole number of minutes: %w", err)
	}
	*m = Minutes(d)
	return nil
}

// Duration returns m as a time.Duration.
func (m Minutes) Duration() time.Duration { return time.Duration(m) }

// Config is the whole configuration. Every field is bound to one environment
// variable. caarlos0/env treats a variable that is set but empty as unset, so
// constraints beyond the type live in Validate.
type Config struct {
	// ListenAddr is the public listener, host:port.
	ListenAddr string `env:"LISTEN_ADDR" envDefault:":8080"`
	// UpstreamURL is the backend that accepted requests are forwarded to.
	// Required; http or https with a host.
	UpstreamURL string `env:"UPSTREAM_URL"`
	// AdminAddr serves /healthz, /readyz, /metrics and, with AdminToken, the
	// admin API. Keep it off the public network.
	AdminAddr string `env:"ADMIN_ADDR" envDefault:"127.0.0.1:9090"`
	// AdminToken is the bearer token of /admin/*. Empty turns the admin API
	// off (404).
	AdminToken string `env:"ADMIN_TOKEN"`

	// RedisURL is a redis:// or rediss:// URL. When set it overrides the
	// RedisHost family below.
	RedisURL      string `env:"REDIS_URL"`
	RedisHost     string `env:"REDIS_HOST" envDefault:"127.0.0.1"`
	RedisPort     int    `env:"REDIS_PORT" envDefault:"6379"`
	RedisUsername string `env:"REDIS_USERNAME"`
	RedisPassword string `env:"REDIS_PASSWORD"`
	// RedisDB is the logical database of a single node; Cluster has only 0.
	RedisDB int `env:"REDIS_SESSION_DB" envDefault:"2"`
	// RedisAddrs lists several host:port addresses: Cluster nodes, or
	// Sentinels when RedisMasterName is set.
	RedisAddrs      []string `env:"REDIS_ADDRS" envSeparator:","`
	RedisMasterName string   `env:"REDIS_MASTER_NAME"`
	// RedisPrefix starts every key sessiongate writes or sweeps.
	RedisPrefix string `env:"REDIS_PREFIX" envDefault:"sessiongate:"`
	// RedisTimeout bounds each store call on the request path.
	RedisTimeout time.Duration `env:"REDIS_TIMEOUT" envDefault:"250ms"`
	// RedisFailureMode is "closed" (503 while the store fails) or "open"
	// (forward with the JWT's identity and log a warning).
	RedisFailureMode string `env:"REDIS_FAILURE_MODE" envDefault:"closed"`

	// SessionStore is "redis" or "memory" (one process, lost on restart).
	SessionStore string `env:"SESSION_STORE" envDefault:"redis"`
	// SessionLifetime is the idle timeout; every accepted request resets it.
	SessionLifetime Minutes `env:"SESSION_LIFETIME" envDefault:"2h"`
	// SessionAbsoluteLifetime rejects sessions older than this even when
	// active. 0 means no limit.
	SessionAbsoluteLifetime Minutes `env:"SESSION_ABSOLUTE_LIFETIME" envDefault:"0"`
	// SessionCreateWindow is how old a token's iat may be when it creates a
	// session. 0 means the same as SessionLifetime.
	SessionCreateWindow Minutes `env:"SESSION_CREATE_WINDOW" envDefault:"0"`
	// SessionMaxPerUser caps live sessions per user; the least recently
	// active one is revoked to make room. 0 means unlimited.
	SessionMaxPerUser int `env:"SESSION_MAX_PER_USER" envDefault:"0"`
	// SessionBindIP revokes a session whose client IP changes.
	SessionBindIP bool `env:"SESSION_BIND_IP" envDefault:"false"`
	// SessionBindUserAgent revokes a session whose User-Agent changes.
	SessionBindUserAgent bool `env:"SESSION_BIND_USER_AGENT" envDefault:"false"`

	// JWTSecret is the HMAC key. Exactly one of JWTSecret, JWTPublicKeyFile
	// and JWTJWKSURL is required.
	JWTSecret        string `env:"JWT_SECRET"`
	JWTPublicKeyFile string `env:"JWT_PUBLIC_KEY_FILE"`
	JWTJWKSURL       string `env:"JWT_JWKS_URL"`
	// JWTJWKSRefresh is how often the JWK Set is fetched again; an unknown
	// kid also triggers a (rate-limited) fetch.
	JWTJWKSRefresh time.Duration `env:"JWT_JWKS_REFRESH" envDefault:"15m"`
	// JWTAlgorithms is the allow-list of "alg" values. Empty means the family
	// of the configured key: HS256,HS384,HS512 for a secret, RS*/PS* for RSA,
	// the curve's ES* for ECDSA, EdDSA for Ed25519.
	JWTAlgorithms []string `env:"JWT_ALGORITHMS" envSeparator:","`
	JWTIssuer     string   `env:"JWT_ISSUER"`
	// JWTAudience lists accepted audiences; a token must name at least one.
	JWTAudience []string `env:"JWT_AUDIENCE" envSeparator:","`
	// JWTLeeway is the clock skew allowed on exp, nbf and iat.
	JWTLeeway time.Duration `env:"JWT_LEEWAY" envDefault:"30s"`
	// JWTRequireIAT rejects tokens without iat, which the create window needs.
	JWTRequireIAT   bool   `env:"JWT_REQUIRE_IAT" envDefault:"true"`
	JWTUserIDClaim  string `env:"JWT_USER_ID_CLAIM" envDefault:"sub"`
	JWTEmailClaim   string `env:"JWT_EMAIL_CLAIM" envDefault:"email"`
	TokenCookie     string `env:"TOKEN_COOKIE"`
	JWTCacheEntries int    `env:"JWT_CACHE_SIZE" envDefault:"10000"`

	// PublicPaths are path prefixes reachable without a token.
	PublicPaths []string `env:"PUBLIC_PATHS" envSeparator:","`
	// LogoutPaths are backend logout routes: the session is revoked, then the
	// request is forwarded.
	LogoutPaths []string `env:"LOGOUT_PATHS" envSeparator:","`

	HeaderUserID    string `env:"HEADER_USER_ID" envDefault:"X-User-Id"`
	HeaderUserEmail string `env:"HEADER_USER_EMAIL" envDefault:"X-User-Email"`
	HeaderSessionID string `env:"HEADER_SESSION_ID" envDefault:"X-Session-Id"`
	// ForwardClaims lists claim:Header pairs, e.g. role:X-User-Role.
	ForwardClaims []string `env:"FORWARD_CLAIMS" envSeparator:","`
	// TrustedProxies lists CIDRs (or single addresses) whose
	// X-Forwarded-* headers are believed.
	TrustedProxies []string `env:"TRUSTED_PROXIES" envSeparator:","`

	// ActivityLogInterval spaces "session activity" log lines per session,
	// across all replicas.
	ActivityLogInterval time.Duration `env:"ACTIVITY_LOG_INTERVAL" envDefault:"5m"`
	// ActivityTouchInterval spaces writes of a session's last activity
	// unless its IP or User-Agent changed.
	ActivityTouchInterval time.Duration `env:"ACTIVITY_TOUCH_INTERVAL" envDefault:"15s"`
	// CleanupInterval is the sweep period; 0 turns the ticker off.
	CleanupInterval time.Duration `env:"CLEANUP_INTERVAL" envDefault:"1h"`

	LogLevel  string `env:"LOG_LEVEL" envDefault:"info"`
	LogFormat string `env:"LOG_FORMAT" envDefault:"json"`
	// ShutdownTimeout is how long in-flight requests may run after SIGTERM.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"30s"`
	// ShutdownDelay keeps serving for this long after SIGTERM with /readyz
	// already failing, so that load balancers stop sending traffic before
	// the listener closes. 0 closes at once.
	ShutdownDelay time.Duration `env:"SHUTDOWN_DELAY" envDefault:"0s"`
	// MaxHeaderBytes limits the request line and headers of the public
	// listener.
	MaxHeaderBytes int `env:"MAX_HEADER_BYTES" envDefault:"65536"`
}

// Load reads the configuration from the process environment.
func Load() (Config, error) {
	return LoadFrom(envMap(os.Environ()))
}

// LoadFrom reads the configuration from environ, a map of variable names to
// values. When a value cannot be parsed, the returned Problems also include
// what Validate finds in the other variables, so that one run reports every
// problem.
func LoadFrom(environ map[string]string) (Config, error) {
	var cfg Config
	err := env.ParseWithOptions(&cfg, env.Options{Environment: environ})
	if err == nil {
		return cfg, nil
	}
	parsed := parseProblems(err, environ)
	var ps Problems
	if !errors.As(parsed, &ps) {
		return Config{}, parsed
	}
	unparsed := map[string]bool{}
	for _, p := range ps {
		unparsed[p.Variable] = true
	}
	var more Problems
	if errors.As(cfg.Validate(), &more) {
		for _, p := range more {
			if !unparsed[p.Variable] {
				ps = append(ps, p)
			}
		}
	}
	return Config{}, ps
}

func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// CreateWindow returns the effective create window: SessionCreateWindow, or
// the idle lifetime when that is 0.
func (c Config) CreateWindow() time.Duration {
	if c.SessionCreateWindow > 0 {
		return c.SessionCreateWindow.Duration()
	}
	return c.SessionLifetime.Duration()
}

// TrustedPrefixes parses TrustedProxies. Call it after Validate.
func (c Config) TrustedPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(c.TrustedProxies))
	for _, s := range c.TrustedProxies {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// ClaimHeaders parses ForwardClaims into claim name to header name. Call it
// after Validate.
func (c Config) ClaimHeaders() map[string]string {
	out := make(map[string]string, len(c.ForwardClaims))
	for _, pair := range c.ForwardClaims {
		claim, header, _ := strings.Cut(strings.TrimSpace(pair), ":")
		out[strings.TrimSpace(claim)] = strings.TrimSpace(header)
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
