package proxy

import (
	"net/http"
	"testing"
)

// Regression: a reserved path spelled so that it only matches after
// cleaning must still be served by sessiongate, never by the backend.
func TestReservedPrefixMatchesCleanedPath(t *testing.T) {
	f := newGatewayFixture(t, nil, nil)
	token := f.token(t, "alice", nil)

	for _, target := range []string{
		"/.sessiongate/sessions",
		"//.sessiongate/sessions",
		"/x/../.sessiongate/sessions",
		"/./.sessiongate/sessions",
	} {
		t.Run(target, func(t *testing.T) {
			before := f.backend.callCount()
			w := f.serve(t, http.MethodGet, target, token, nil)
			if w.Code != http.StatusOK {
				t.Errorf("GET %s status = %d, want 200 from the sessions endpoint; body %s", target, w.Code, w.Body)
			}
			if got := f.backend.callCount(); got != before {
				t.Errorf("GET %s reached the backend %d times, want 0", target, got-before)
			}
		})
	}
}

// CORS preflights carry no credentials and must reach the backend.
func TestPreflightForwardedWithoutToken(t *testing.T) {
	f := newGatewayFixture(t, nil, nil)
	w := f.serve(t, http.MethodOptions, "/api/user", "", http.Header{
		"Origin":                        {"https://app.example.test"},
		"Access-Control-Request-Method": {"GET"},
	})
	if w.Code != http.StatusOK {
		t.Fatalf("preflight status = %d, want 200 from the backend; body %s", w.Code, w.Body)
	}
	if f.backend.callCount() != 1 {
		t.Errorf("backend calls = %d, want 1", f.backend.callCount())
	}

	// A plain OPTIONS without the preflight header still needs a token.
	w = f.serve(t, http.MethodOptions, "/api/user", "", nil)
	if w.Code != http.StatusUnauthorized {
		t.Errorf("OPTIONS without preflight header status = %d, want 401", w.Code)
	}
}
