package configs

import (
	"strings"
	"testing"
)

// Regression: an algorithm of another key family passed validation and
// failed only later with a stack trace.
func TestValidateAlgorithmMustFitKey(t *testing.T) {
	for _, row := range []struct {
		name  string
		env   map[string]string
		valid bool
		fits  string // an algorithm the problem must name
	}{
		{name: "secret with HS256", env: map[string]string{"JWT_ALGORITHMS": "HS256"}, valid: true},
		{name: "secret with RS256", env: map[string]string{"JWT_ALGORITHMS": "RS256"}, fits: "HS256"},
		{name: "key file with HS256", env: map[string]string{"JWT_SECRET": "", "JWT_PUBLIC_KEY_FILE": "/k.pem", "JWT_ALGORITHMS": "HS256"}, fits: "RS*"},
		{name: "key file with ES256", env: map[string]string{"JWT_SECRET": "", "JWT_PUBLIC_KEY_FILE": "/k.pem", "JWT_ALGORITHMS": "ES256"}, valid: true},
	} {
		t.Run(row.name, func(t *testing.T) {
			env := validEnv()
			for k, v := range row.env {
				if v == "" {
					delete(env, k)
				} else {
					env[k] = v
				}
			}
			cfg, err := LoadFrom(env)
			if err == nil {
				err = cfg.Validate()
			}
			if row.valid {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			p, ok := problemFor(problemsOf(t, err), "JWT_ALGORITHMS")
			if !ok {
				t.Fatalf("Validate() = %v, want a JWT_ALGORITHMS problem", err)
			}
			if !strings.Contains(p.Accepted, row.fits) {
				t.Errorf("problem %q does not say which algorithms fit", p)
			}
		})
	}
}

func TestValidateAbsoluteLifetimeLongerThanLeeway(t *testing.T) {
	env := validEnv()
	env["SESSION_ABSOLUTE_LIFETIME"] = "20s"
	cfg, err := LoadFrom(env)
	if err == nil {
		err = cfg.Validate()
	}
	if _, ok := problemFor(problemsOf(t, err), "SESSION_ABSOLUTE_LIFETIME"); !ok {
		t.Fatalf("Validate() = %v, want a SESSION_ABSOLUTE_LIFETIME problem with the default 30s leeway", err)
	}

	env["JWT_LEEWAY"] = "5s"
	cfg, err = LoadFrom(env)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Errorf("Validate() with JWT_LEEWAY=5s = %v, want nil", err)
	}
}

func TestProblemShowsRedisURLWithoutPassword(t *testing.T) {
	for _, row := range []struct {
		url, want, hidden string
	}{
		{url: "http://127.0.0.1:6379", want: "http://127.0.0.1:6379"},
		{url: "http://user:hunter2@127.0.0.1:6379", want: "127.0.0.1:6379", hidden: "hunter2"},
	} {
		env := validEnv()
		env["REDIS_URL"] = row.url
		cfg, err := LoadFrom(env)
		if err == nil {
			err = cfg.Validate()
		}
		p, ok := problemFor(problemsOf(t, err), "REDIS_URL")
		if !ok {
			t.Fatalf("Validate(REDIS_URL=%s) = %v, want a REDIS_URL problem", row.url, err)
		}
		if !strings.Contains(p.Value, row.want) {
			t.Errorf("problem value = %q, want it to contain %q", p.Value, row.want)
		}
		if row.hidden != "" && strings.Contains(p.String(), row.hidden) {
			t.Errorf("problem %q shows the password", p)
		}
	}
}

// Regression: SHUTDOWN_TIMEOUT=0 was accepted and cut every in-flight
// request at SIGTERM.
func TestValidateShutdownTimeoutPositive(t *testing.T) {
	env := validEnv()
	env["SHUTDOWN_TIMEOUT"] = "0s"
	cfg, err := LoadFrom(env)
	if err == nil {
		err = cfg.Validate()
	}
	if _, ok := problemFor(problemsOf(t, err), "SHUTDOWN_TIMEOUT"); !ok {
		t.Errorf("Validate(SHUTDOWN_TIMEOUT=0s) = %v, want a SHUTDOWN_TIMEOUT problem", err)
	}
}

func TestRedactedHidesURLPasswords(t *testing.T) {
	env := validEnv()
	env["UPSTREAM_URL"] = "http://svc:hunter2@127.0.0.1:8000"
	cfg, err := LoadFrom(env)
	if err != nil {
		t.Fatalf("LoadFrom: %v", err)
	}
	got, _ := cfg.Redacted()["UPSTREAM_URL"].(string)
	if strings.Contains(got, "hunter2") || !strings.Contains(got, "127.0.0.1:8000") {
		t.Errorf("Redacted UPSTREAM_URL = %q, want the URL without its password", got)
	}
}
