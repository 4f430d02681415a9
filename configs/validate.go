package configs

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Problem is one invalid setting: the variable, the value it had and what
// would be accepted. Values of secret variables are never included.
type Problem struct {
	Variable string
	Value    string
	Accepted string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s=%q: %s", p.Variable, p.Value, p.Accepted)
}

// Problems is the error returned by Load and Validate; it lists every
// invalid setting, not only the first.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return "invalid configuration: " + strings.Join(lines, "; ")
}

// secretVariables are never echoed in problems or start-up logs.
var secretVariables = map[string]bool{
	"JWT_SECRET":     true,
	"REDIS_PASSWORD": true,
	"ADMIN_TOKEN":    true,
	"REDIS_URL":      true, // may embed a password
}

func shown(variable, value string) string {
	if variable == "REDIS_URL" || variable == "UPSTREAM_URL" || variable == "JWT_JWKS_URL" {
		// Shown without a password, so a malformed URL can be fixed.
		return redactURL(value)
	}
	if secretVariables[variable] && value != "" {
		return "[redacted]"
	}
	return value
}

// parseProblems turns caarlos0/env's parse errors into Problems that name
// the environment variable instead of the Go field.
func parseProblems(err error, environ map[string]string) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("read environment: %w", err)
	}
	t := reflect.TypeFor[Config]()
	var ps Problems
	for _, e := range agg.Errors {
		var pe env.ParseError
		if !errors.As(e, &pe) {
			ps = append(ps, Problem{Variable: "?", Accepted: e.Error()})
			continue
		}
		variable := pe.Name
		if f, ok := t.FieldByName(pe.Name); ok {
			variable = f.Tag.Get("env")
		}
		ps = append(ps, Problem{
			Variable: variable,
			Value:    shown(variable, environ[variable]),
			Accepted: acceptedFor(pe),
		})
	}
	return ps
}

func acceptedFor(pe env.ParseError) string {
	switch pe.Type {
	case reflect.TypeFor[time.Duration]():
		return "want a Go duration such as 250ms, 30s or 1h"
	case reflect.TypeFor[Minutes]():
		return "want a Go duration such as 2h or a whole number of minutes such as 120"
	case reflect.TypeFor[int]():
		return "want a whole number"
	case reflect.TypeFor[bool]():
		return "want true or false"
	}
	return pe.Err.Error()
}

// Validate checks every setting and returns Problems listing all that are
// invalid, or nil.
func (c Config) Validate() error {
	var ps Problems
	add := func(variable, value, accepted string) {
		ps = append(ps, Problem{Variable: variable, Value: shown(variable, value), Accepted: accepted})
	}

	checkAddr := func(variable, value string) {
		if _, _, err := net.SplitHostPort(value); err != nil {
			add(variable, value, "want host:port or :port, e.g. :8080")
		}
	}
	checkAddr("LISTEN_ADDR", c.ListenAddr)
	checkAddr("ADMIN_ADDR", c.AdminAddr)

	if c.UpstreamURL == "" {
		add("UPSTREAM_URL", "", "required: the backend's URL, e.g. http://127.0.0.1:8000")
	} else if u, err := url.Parse(c.UpstreamURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("UPSTREAM_URL", c.UpstreamURL, "want an http:// or https:// URL with a host, e.g. http://127.0.0.1:8000")
	}

	switch c.SessionStore {
	case "redis":
		c.validateRedis(add)
	case "memory":
	default:
		add("SESSION_STORE", c.SessionStore, "want redis or memory")
	}
	if c.RedisTimeout <= 0 {
		add("REDIS_TIMEOUT", c.RedisTimeout.String(), "want a positive duration such as 250ms")
	}
	if c.RedisFailureMode != "closed" && c.RedisFailureMode != "open" {
		add("REDIS_FAILURE_MODE", c.RedisFailureMode, "want closed or open")
	}
	if c.RedisPrefix == "" || strings.ContainsAny(c.RedisPrefix, "{}*?[]") {
		add("REDIS_PREFIX", c.RedisPrefix, "want a non-empty prefix without { } * ? [ ]")
	}

	if c.SessionLifetime.Duration() < time.Second {
		add("SESSION_LIFETIME", c.SessionLifetime.Duration().String(), "want at least 1s, e.g. 2h or 120 (minutes)")
	}
	if c.SessionAbsoluteLifetime < 0 {
		add("SESSION_ABSOLUTE_LIFETIME", c.SessionAbsoluteLifetime.Duration().String(), "want 0 (no limit) or a positive duration")
	} else if c.SessionAbsoluteLifetime > 0 && c.SessionAbsoluteLifetime.Duration() <= c.JWTLeeway {
		// Creation is refused once iat plus the leeway reaches the limit, so
		// a shorter limit would refuse every token.
		add("SESSION_ABSOLUTE_LIFETIME", c.SessionAbsoluteLifetime.Duration().String(), "want 0 (no limit) or a duration longer than JWT_LEEWAY ("+c.JWTLeeway.String()+")")
	}
	if c.SessionCreateWindow < 0 {
		add("SESSION_CREATE_WINDOW", c.SessionCreateWindow.Duration().String(), "want 0 (the idle lifetime) or a positive duration")
	}
	if c.SessionMaxPerUser < 0 {
		add("SESSION_MAX_PER_USER", fmt.Sprint(c.SessionMaxPerUser), "want 0 (unlimited) or a positive number")
	}

	c.validateJWT(add)

	for _, p := range slices.Concat(c.PublicPaths, c.LogoutPaths) {
		if !strings.HasPrefix(strings.TrimSpace(p), "/") {
			add(pathVariable(c, p), p, "want path prefixes that start with /")
		}
	}
	seen := map[string]bool{}
	for _, h := range []struct{ variable, value string }{
		{"HEADER_USER_ID", c.HeaderUserID}, {"HEADER_USER_EMAIL", c.HeaderUserEmail}, {"HEADER_SESSION_ID", c.HeaderSessionID},
	} {
		if !validHeaderName(h.value) {
			add(h.variable, h.value, "want an HTTP header name such as X-User-Id")
		}
		seen[http.CanonicalHeaderKey(h.value)] = true
	}
	for _, pair := range c.ForwardClaims {
		claim, header, ok := strings.Cut(strings.TrimSpace(pair), ":")
		if !ok || strings.TrimSpace(claim) == "" || !validHeaderName(strings.TrimSpace(header)) {
			add("FORWARD_CLAIMS", pair, "want claim:Header pairs separated by commas, e.g. role:X-User-Role")
		}
	}
	for _, s := range c.TrustedProxies {
		if _, err := parsePrefix(s); err != nil {
			add("TRUSTED_PROXIES", s, "want CIDRs or addresses separated by commas, e.g. 10.0.0.0/8,::1")
		}
	}

	if c.ActivityLogInterval < 0 {
		add("ACTIVITY_LOG_INTERVAL", c.ActivityLogInterval.String(), "want 0 or a positive duration")
	}
	if c.ActivityTouchInterval < 0 {
		add("ACTIVITY_TOUCH_INTERVAL", c.ActivityTouchInterval.String(), "want 0 or a positive duration")
	}
	if c.CleanupInterval < 0 {
		add("CLEANUP_INTERVAL", c.CleanupInterval.String(), "want 0 (off) or a positive duration")
	}
	if c.ShutdownDelay < 0 {
		add("SHUTDOWN_DELAY", c.ShutdownDelay.String(), "want 0 or a positive duration such as 5s")
	}
	if c.ShutdownTimeout <= 0 {
		// 0 would cut every in-flight request at SIGTERM.
		add("SHUTDOWN_TIMEOUT", c.ShutdownTimeout.String(), "want a positive duration such as 30s")
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		add("LOG_LEVEL", c.LogLevel, "want debug, info, warn or error")
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		add("LOG_FORMAT", c.LogFormat, "want json or console")
	}
	if c.MaxHeaderBytes < 4096 {
		add("MAX_HEADER_BYTES", fmt.Sprint(c.MaxHeaderBytes), "want at least 4096")
	}
	if c.JWTCacheEntries < 0 {
		add("JWT_CACHE_SIZE", fmt.Sprint(c.JWTCacheEntries), "want 0 (no cache) or a positive number")
	}

	if len(ps) > 0 {
		return ps
	}
	return nil
}

func (c Config) validateRedis(add func(variable, value, accepted string)) {
	if c.RedisURL != "" {
		if _, err := url.Parse(c.RedisURL); err != nil || !(strings.HasPrefix(c.RedisURL, "redis://") || strings.HasPrefix(c.RedisURL, "rediss://")) {
			add("REDIS_URL", c.RedisURL, "want a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379/2")
		}
		return
	}
	if len(c.RedisAddrs) > 0 {
		for _, a := range c.RedisAddrs {
			if _, _, err := net.SplitHostPort(strings.TrimSpace(a)); err != nil {
				add("REDIS_ADDRS", a, "want host:port addresses separated by commas")
			}
		}
		return
	}
	if c.RedisHost == "" {
		add("REDIS_HOST", "", "want a host name or address")
	}
	if c.RedisPort < 1 || c.RedisPort > 65535 {
		add("REDIS_PORT", fmt.Sprint(c.RedisPort), "want a port from 1 to 65535")
	}
	if c.RedisDB < 0 || c.RedisDB > 15 {
		add("REDIS_SESSION_DB", fmt.Sprint(c.RedisDB), "want a database number from 0 to 15")
	}
}

func (c Config) validateJWT(add func(variable, value, accepted string)) {
	keys := 0
	for _, v := range []string{c.JWTSecret, c.JWTPublicKeyFile, c.JWTJWKSURL} {
		if v != "" {
			keys++
		}
	}
	switch {
	case keys == 0:
		add("JWT_SECRET", "", "one of JWT_SECRET, JWT_PUBLIC_KEY_FILE or JWT_JWKS_URL is required")
	case keys > 1:
		add("JWT_SECRET", c.JWTSecret, "set only one of JWT_SECRET, JWT_PUBLIC_KEY_FILE and JWT_JWKS_URL")
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		// RFC 7518 section 3.2 requires a key of at least the hash size for HS256.
		add("JWT_SECRET", c.JWTSecret, "want at least 32 bytes (256 bits), as RFC 7518 requires for HS256")
	}
	if c.JWTJWKSURL != "" {
		if u, err := url.Parse(c.JWTJWKSURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("JWT_JWKS_URL", c.JWTJWKSURL, "want an https:// (or http://) URL of a JWK Set")
		}
		if c.JWTJWKSRefresh < time.Minute {
			add("JWT_JWKS_REFRESH", c.JWTJWKSRefresh.String(), "want at least 1m")
		}
	}
	for _, alg := range c.JWTAlgorithms {
		alg = strings.TrimSpace(alg)
		switch {
		case !slices.Contains(KnownAlgorithms, alg):
			add("JWT_ALGORITHMS", alg, "want a comma-separated list of "+strings.Join(KnownAlgorithms, ", "))
		case c.JWTSecret != "" && !strings.HasPrefix(alg, "HS"):
			add("JWT_ALGORITHMS", alg, "JWT_SECRET is an HMAC key, so only HS256, HS384 and HS512 fit; use JWT_PUBLIC_KEY_FILE for "+alg)
		case c.JWTSecret == "" && strings.HasPrefix(alg, "HS"):
			// An HMAC algorithm with a public key would let anyone holding
			// the public key sign tokens.
			add("JWT_ALGORITHMS", alg, "HMAC algorithms need JWT_SECRET; a public key or JWK Set accepts RS*, PS*, ES* and EdDSA")
		}
	}
	if c.JWTLeeway < 0 || c.JWTLeeway > 5*time.Minute {
		add("JWT_LEEWAY", c.JWTLeeway.String(), "want a duration from 0 to 5m")
	}
	if c.JWTUserIDClaim == "" {
		add("JWT_USER_ID_CLAIM", "", "want a claim name such as sub")
	}
}

// KnownAlgorithms lists the JWS algorithms that JWT_ALGORITHMS accepts;
// "none" is never among them.
var KnownAlgorithms = []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

func pathVariable(c Config, p string) string {
	if slices.Contains(c.LogoutPaths, p) {
		return "LOGOUT_PATHS"
	}
	return "PUBLIC_PATHS"
}

func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// Redacted returns the configuration as loggable fields with every secret
// replaced by "[redacted]" or, when unset, by an empty string.
func (c Config) Redacted() map[string]any {
	out := map[string]any{}
	t := reflect.TypeFor[Config]()
	v := reflect.ValueOf(c)
	for i := range t.NumField() {
		name := t.Field(i).Tag.Get("env")
		if name == "" {
			continue
		}
		val := v.Field(i).Interface()
		switch x := val.(type) {
		case Minutes:
			val = x.Duration().String()
		case time.Duration:
			val = x.String()
		case string:
			val = shown(name, x)
		}
		out[name] = val
	}
	return out
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[redacted]"
	}
	if u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "redacted")
	}
	return u.String()
}
