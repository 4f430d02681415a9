package configs

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// The shipped example must stay a working configuration, apart from the
// secret it leaves empty on purpose.
func TestExampleEnvIsValidOnceSecretIsSet(t *testing.T) {
	f, err := os.Open("example.env")
	if err != nil {
		t.Fatalf("open example.env: %v", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("example.env line %q is not KEY=VALUE", line)
		}
		env[k] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read example.env: %v", err)
	}

	cfg, err := LoadFrom(env)
	if err == nil {
		err = cfg.Validate()
	}
	if _, ok := problemFor(problemsOf(t, err), "JWT_SECRET"); !ok {
		t.Errorf("example.env without a secret: %v, want a JWT_SECRET problem", err)
	}

	env["JWT_SECRET"] = strings.Repeat("s", 32)
	cfg, err = LoadFrom(env)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Errorf("example.env with a secret: %v, want a valid configuration", err)
	}
}
