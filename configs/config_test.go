package configs

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// validEnv returns the smallest environment that passes Validate.
func validEnv() map[string]string {
	return map[string]string{
		"UPSTREAM_URL": "http://127.0.0.1:8000",
		"JWT_SECRET":   "0123456789abcdef0123456789abcdef",
	}
}

// problemsOf returns the Problems inside err, failing the test when err is
// not a Problems error.
func problemsOf(t *testing.T, err error) Problems {
	t.Helper()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error = %v (%T), want Problems", err, err)
	}
	return ps
}

// problemFor returns the first problem that names variable.
func problemFor(ps Problems, variable string) (Problem, bool) {
	for _, p := range ps {
		if p.Variable == variable {
			return p, true
		}
	}
	return Problem{}, false
}

func TestLoadDefaultsMatchDesign(t *testing.T) {
	cfg, err := LoadFrom(map[string]string{})
	if err != nil {
		t.Fatalf("LoadFrom(empty) error = %v", err)
	}

	tests := []struct {
		variable string
		got      any
		want     any
	}{
		{"LISTEN_ADDR", cfg.ListenAddr, ":8080"},
		{"UPSTREAM_URL", cfg.UpstreamURL, ""},
		{"ADMIN_ADDR", cfg.AdminAddr, "127.0.0.1:9090"},
		{"ADMIN_TOKEN", cfg.AdminToken, ""},
		{"REDIS_URL", cfg.RedisURL, ""},
		{"REDIS_HOST", cfg.RedisHost, "127.0.0.1"},
		{"REDIS_PORT", cfg.RedisPort, 6379},
		{"REDIS_USERNAME", cfg.RedisUsername, ""},
		{"REDIS_PASSWORD", cfg.RedisPassword, ""},
		{"REDIS_SESSION_DB", cfg.RedisDB, 2},
		{"REDIS_ADDRS", len(cfg.RedisAddrs), 0},
		{"REDIS_MASTER_NAME", cfg.RedisMasterName, ""},
		{"REDIS_PREFIX", cfg.RedisPrefix, "sessiongate:"},
		{"REDIS_TIMEOUT", cfg.RedisTimeout, 250 * time.Millisecond},
		{"REDIS_FAILURE_MODE", cfg.RedisFailureMode, "closed"},
		{"SESSION_STORE", cfg.SessionStore, "redis"},
		{"SESSION_LIFETIME", cfg.SessionLifetime.Duration(), 2 * time.Hour},
		{"SESSION_ABSOLUTE_LIFETIME", cfg.SessionAbsoluteLifetime.Duration(), time.Duration(0)},
		{"SESSION_CREATE_WINDOW (effective)", cfg.CreateWindow(), 2 * time.Hour},
		{"SESSION_MAX_PER_USER", cfg.SessionMaxPerUser, 0},
		{"JWT_SECRET", cfg.JWTSecret, ""},
		{"JWT_PUBLIC_KEY_FILE", cfg.JWTPublicKeyFile, ""},
		{"JWT_JWKS_URL", cfg.JWTJWKSURL, ""},
		{"JWT_ALGORITHMS", len(cfg.JWTAlgorithms), 0},
		{"JWT_ISSUER", cfg.JWTIssuer, ""},
		{"JWT_AUDIENCE", len(cfg.JWTAudience), 0},
		{"JWT_LEEWAY", cfg.JWTLeeway, 30 * time.Second},
		{"JWT_REQUIRE_IAT", cfg.JWTRequireIAT, true},
		{"JWT_USER_ID_CLAIM", cfg.JWTUserIDClaim, "sub"},
		{"JWT_EMAIL_CLAIM", cfg.JWTEmailClaim, "email"},
		{"TOKEN_COOKIE", cfg.TokenCookie, ""},
		{"PUBLIC_PATHS", len(cfg.PublicPaths), 0},
		{"LOGOUT_PATHS", len(cfg.LogoutPaths), 0},
		{"HEADER_USER_ID", cfg.HeaderUserID, "X-User-Id"},
		{"HEADER_USER_EMAIL", cfg.HeaderUserEmail, "X-User-Email"},
		{"HEADER_SESSION_ID", cfg.HeaderSessionID, "X-Session-Id"},
		{"FORWARD_CLAIMS", len(cfg.ForwardClaims), 0},
		{"TRUSTED_PROXIES", len(cfg.TrustedProxies), 0},
		{"ACTIVITY_LOG_INTERVAL", cfg.ActivityLogInterval, 5 * time.Minute},
		{"CLEANUP_INTERVAL", cfg.CleanupInterval, time.Hour},
		{"LOG_LEVEL", cfg.LogLevel, "info"},
		{"LOG_FORMAT", cfg.LogFormat, "json"},
		{"SHUTDOWN_TIMEOUT", cfg.ShutdownTimeout, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.variable, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("default %s = %v, want %v", tt.variable, tt.got, tt.want)
			}
		})
	}
}

func TestValidateEmptyEnvironmentNeedsUpstreamAndKey(t *testing.T) {
	cfg, err := LoadFrom(map[string]string{})
	if err != nil {
		t.Fatalf("LoadFrom(empty) error = %v", err)
	}
	ps := problemsOf(t, cfg.Validate())

	var got []string
	for _, p := range ps {
		got = append(got, p.Variable)
	}
	want := []string{"UPSTREAM_URL", "JWT_SECRET"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Validate() problems name %v, want %v", got, want)
	}
}

func TestValidateAcceptsMinimalEnvironment(t *testing.T) {
	cfg, err := LoadFrom(validEnv())
	if err != nil {
		t.Fatalf("LoadFrom error = %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
}

func TestSessionLifetimeParsing(t *testing.T) {
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"120", 120 * time.Minute},
		{"1", time.Minute},
		{" 30 ", 30 * time.Minute},
		{"2h", 2 * time.Hour},
		{"90s", 90 * time.Second},
		{"1h30m", 90 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			env := validEnv()
			env["SESSION_LIFETIME"] = tt.value
			cfg, err := LoadFrom(env)
			if err != nil {
				t.Fatalf("LoadFrom(SESSION_LIFETIME=%q) error = %v", tt.value, err)
			}
			if got := cfg.SessionLifetime.Duration(); got != tt.want {
				t.Errorf("SESSION_LIFETIME=%q gives %v, want %v", tt.value, got, tt.want)
			}
		})
	}
}

func TestSessionLifetimeRejectsGarbage(t *testing.T) {
	for _, value := range []string{"abc", "2 hours", "1.5"} {
		t.Run(value, func(t *testing.T) {
			env := validEnv()
			env["SESSION_LIFETIME"] = value
			_, err := LoadFrom(env)
			p, ok := problemFor(problemsOf(t, err), "SESSION_LIFETIME")
			if !ok {
				t.Fatalf("LoadFrom(SESSION_LIFETIME=%q) = %v, want a SESSION_LIFETIME problem", value, err)
			}
			if p.Value != value {
				t.Errorf("problem value = %q, want %q", p.Value, value)
			}
			if !strings.Contains(p.Accepted, "minutes") {
				t.Errorf("problem says %q, want it to mention minutes", p.Accepted)
			}
		})
	}
}

func TestSessionLifetimeBelowOneSecondIsInvalid(t *testing.T) {
	env := validEnv()
	env["SESSION_LIFETIME"] = "500ms"
	cfg, err := LoadFrom(env)
	if err != nil {
		t.Fatalf("LoadFrom error = %v", err)
	}
	if _, ok := problemFor(problemsOf(t, cfg.Validate()), "SESSION_LIFETIME"); !ok {
		t.Errorf("Validate() with SESSION_LIFETIME=500ms reports no SESSION_LIFETIME problem")
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	env := map[string]string{
		"LISTEN_ADDR":        "8080",
		"UPSTREAM_URL":       "ftp://backend",
		"REDIS_FAILURE_MODE": "maybe",
		"SESSION_STORE":      "disk",
		"REDIS_PREFIX":       "{bad}",
		"JWT_ALGORITHMS":     "HS256,none",
		"JWT_LEEWAY":         "10m0s",
		"PUBLIC_PATHS":       "health",
		"HEADER_USER_ID":     "X User",
		"FORWARD_CLAIMS":     "role",
		"TRUSTED_PROXIES":    "10.0.0.0/33",
		"LOG_LEVEL":          "loud",
		"LOG_FORMAT":         "xml",
		"MAX_HEADER_BYTES":   "100",
	}
	cfg, err := LoadFrom(env)
	if err != nil {
		t.Fatalf("LoadFrom error = %v", err)
	}
	ps := problemsOf(t, cfg.Validate())

	want := []string{
		"LISTEN_ADDR", "UPSTREAM_URL", "REDIS_FAILURE_MODE", "SESSION_STORE", "REDIS_PREFIX",
		"JWT_SECRET", "JWT_ALGORITHMS", "JWT_LEEWAY", "PUBLIC_PATHS", "HEADER_USER_ID",
		"FORWARD_CLAIMS", "TRUSTED_PROXIES", "LOG_LEVEL", "LOG_FORMAT", "MAX_HEADER_BYTES",
	}
	for _, variable := range want {
		p, ok := problemFor(ps, variable)
		if !ok {
			t.Errorf("Validate() names no problem with %s; problems: %v", variable, ps)
			continue
		}
		if p.Accepted == "" {
			t.Errorf("problem with %s does not say what is accepted", variable)
		}
		if value, set := env[variable]; set && !strings.Contains(value, p.Value) {
			t.Errorf("problem with %s shows value %q, want part of %q", variable, p.Value, value)
		}
	}
}

// A value that cannot be parsed must not hide the problems of other
// variables: the operator fixes everything in one round.
func TestLoadReportsAllProblemsTogether(t *testing.T) {
	env := map[string]string{
		"UPSTREAM_URL":       "http://127.0.0.1:8000",
		"SESSION_LIFETIME":   "abc",
		"REDIS_TIMEOUT":      "soon",
		"REDIS_FAILURE_MODE": "maybe",
	}
	_, err := LoadFrom(env)
	ps := problemsOf(t, err)

	for _, variable := range []string{"SESSION_LIFETIME", "REDIS_TIMEOUT", "REDIS_FAILURE_MODE", "JWT_SECRET"} {
		if _, ok := problemFor(ps, variable); !ok {
			t.Errorf("LoadFrom names no problem with %s; problems: %v", variable, ps)
		}
	}
	seen := map[string]int{}
	for _, p := range ps {
		seen[p.Variable]++
	}
	if seen["SESSION_LIFETIME"] != 1 {
		t.Errorf("SESSION_LIFETIME reported %d times, want once; problems: %v", seen["SESSION_LIFETIME"], ps)
	}
}

func TestProblemsRedactSecretValues(t *testing.T) {
	env := validEnv()
	env["JWT_SECRET"] = "short-secret"
	cfg, err := LoadFrom(env)
	if err != nil {
		t.Fatalf("LoadFrom error = %v", err)
	}
	err = cfg.Validate()
	p, ok := problemFor(problemsOf(t, err), "JWT_SECRET")
	if !ok {
		t.Fatalf("Validate() with a 12-byte JWT_SECRET = %v, want a JWT_SECRET problem", err)
	}
	if strings.Contains(err.Error(), "short-secret") {
		t.Errorf("error %q shows the secret", err)
	}
	if p.Value != "[redacted]" {
		t.Errorf("problem value = %q, want [redacted]", p.Value)
	}
}

func TestRedactedHidesSecrets(t *testing.T) {
	secrets := map[string]string{
		"JWT_SECRET":     "jwt-secret-value-0123456789abcdef",
		"REDIS_PASSWORD": "redis-password-value",
		"ADMIN_TOKEN":    "admin-token-value",
	}
	env := validEnv()
	for k, v := range secrets {
		env[k] = v
	}
	env["REDIS_URL"] = "redis://app:url-password-value@127.0.0.1:6379/2"
	env["UPSTREAM_URL"] = "http://backend.test:8000"
	cfg, err := LoadFrom(env)
	if err != nil {
		t.Fatalf("LoadFrom error = %v", err)
	}

	fields := cfg.Redacted()
	dump := fmt.Sprint(fields)
	for _, hidden := range []string{"jwt-secret-value", "redis-password-value", "admin-token-value", "url-password-value"} {
		if strings.Contains(dump, hidden) {
			t.Errorf("Redacted() contains %q: %s", hidden, dump)
		}
	}
	for variable := range secrets {
		if got := fields[variable]; got != "[redacted]" {
			t.Errorf("Redacted()[%s] = %v, want [redacted]", variable, got)
		}
	}
	if got, want := fields["REDIS_URL"], "redis://app:redacted@127.0.0.1:6379/2"; got != want {
		t.Errorf("Redacted()[REDIS_URL] = %v, want %v", got, want)
	}
	if got, want := fields["UPSTREAM_URL"], "http://backend.test:8000"; got != want {
		t.Errorf("Redacted()[UPSTREAM_URL] = %v, want %v", got, want)
	}
	if got, want := fields["SESSION_LIFETIME"], "2h0m0s"; got != want {
		t.Errorf("Redacted()[SESSION_LIFETIME] = %v, want %v", got, want)
	}
}

func TestRedactedLeavesUnsetSecretsEmpty(t *testing.T) {
	cfg, err := LoadFrom(validEnv())
	if err != nil {
		t.Fatalf("LoadFrom error = %v", err)
	}
	fields := cfg.Redacted()
	for _, variable := range []string{"ADMIN_TOKEN", "REDIS_PASSWORD", "REDIS_URL"} {
		if got := fields[variable]; got != "" {
			t.Errorf("Redacted()[%s] = %v, want empty for an unset secret", variable, got)
		}
	}
}

func TestTrustedPrefixesAcceptAddressesAndCIDRs(t *testing.T) {
	cfg := Config{TrustedProxies: []string{"10.1.2.3/8", " 192.168.0.1 ", "::1"}}
	got := fmt.Sprint(cfg.TrustedPrefixes())
	if want := "[10.0.0.0/8 192.168.0.1/32 ::1/128]"; got != want {
		t.Errorf("TrustedPrefixes() = %s, want %s", got, want)
	}
}

func TestClaimHeadersTrimsPairs(t *testing.T) {
	cfg := Config{ForwardClaims: []string{"role:X-User-Role", " tenant : X-Tenant "}}
	got := cfg.ClaimHeaders()
	want := map[string]string{"role": "X-User-Role", "tenant": "X-Tenant"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ClaimHeaders() = %v, want %v", got, want)
	}
}
