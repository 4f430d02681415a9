package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Regression: the backend must receive the credential that was verified
// and no other, or a backend that reads the JWT itself acts on a token the
// gate never checked.
func TestBackendReceivesOnlyVerifiedBearer(t *testing.T) {
	f := newGatewayFixture(t, nil, nil)
	good := f.token(t, "ann", nil)
	other := f.token(t, "mallory", nil)

	r := httptest.NewRequest(http.MethodGet, "/api", nil)
	r.Header["Authorization"] = []string{"Bearer " + good, "Bearer " + other}
	w := httptest.NewRecorder()
	f.gateway.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
	}
	got := f.backend.lastHeader(t).Values("Authorization")
	if len(got) != 1 || got[0] != "Bearer "+good {
		t.Errorf("backend Authorization = %q, want only the verified bearer token", got)
	}
}

// Regression: with a token cookie, a header the gate did not take for a
// bearer token must not reach the backend beside the cookie's identity.
func TestCookieTokenDropsOtherAuthorization(t *testing.T) {
	f := newGatewayFixture(t, map[string]string{"TOKEN_COOKIE": "jwt"}, nil)
	victim := f.token(t, "victim", nil)
	attacker := f.token(t, "attacker", nil)

	t.Run("tab after Bearer is a bearer token", func(t *testing.T) {
		w := f.serve(t, http.MethodGet, "/api", "", http.Header{
			"Authorization": {"Bearer\t" + victim},
			"Cookie":        {"jwt=" + attacker},
		})
		if w.Code != http.StatusOK {
			t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
		}
		if id := f.backend.lastHeader(t).Get("X-User-Id"); id != "victim" {
			t.Errorf("X-User-Id = %q, want the user of the header token, victim", id)
		}
	})
	t.Run("other scheme is dropped", func(t *testing.T) {
		w := f.serve(t, http.MethodGet, "/api", "", http.Header{
			"Authorization": {"Basic dXNlcjpwYXNz"},
			"Cookie":        {"jwt=" + attacker},
		})
		if w.Code != http.StatusOK {
			t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
		}
		got := f.backend.lastHeader(t)
		if v := got.Values("Authorization"); len(v) != 0 {
			t.Errorf("backend Authorization = %q, want none beside a cookie token", v)
		}
		if id := got.Get("X-User-Id"); id != "attacker" {
			t.Errorf("X-User-Id = %q, want attacker", id)
		}
	})
}

// Regression: a rejected token forwarded anonymously to a public path
// could be renewed by a backend refresh route, undoing revocation.
func TestRejectedTokenRemovedOnPublicPath(t *testing.T) {
	f := newGatewayFixture(t, map[string]string{"PUBLIC_PATHS": "/public", "TOKEN_COOKIE": "jwt"}, nil)
	w := f.serve(t, http.MethodGet, "/public/refresh", "", http.Header{
		"Authorization": {"Bearer not.a.valid-token"},
		"Cookie":        {"theme=dark; jwt=not.a.valid-token; lang=en"},
	})
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
	}
	got := f.backend.lastHeader(t)
	if v := got.Values("Authorization"); len(v) != 0 {
		t.Errorf("backend Authorization = %q, want none for a rejected token", v)
	}
	if c := got.Get("Cookie"); strings.Contains(c, "jwt=") || !strings.Contains(c, "theme=dark") || !strings.Contains(c, "lang=en") {
		t.Errorf("backend Cookie = %q, want the other cookies without jwt", c)
	}
	if id := got.Get("X-User-Id"); id != "" {
		t.Errorf("X-User-Id = %q, want none", id)
	}
}

func TestPreflightBodyIsNotForwarded(t *testing.T) {
	f := newGatewayFixture(t, nil, nil)
	r := httptest.NewRequest(http.MethodOptions, "/api/admin", strings.NewReader("payload"))
	r.Header.Set("Access-Control-Request-Method", "POST")
	w := httptest.NewRecorder()
	f.gateway.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
	}
	f.backend.mu.Lock()
	defer f.backend.mu.Unlock()
	if f.backend.lastBody != 0 {
		t.Errorf("backend read %d body bytes of a preflight, want 0", f.backend.lastBody)
	}
}

// Regression: a path is forwarded as sessiongate understood it, so that
// the backend cannot resolve it to a route the access check did not see.
func TestPathForwardedAsChecked(t *testing.T) {
	f := newGatewayFixture(t, map[string]string{"PUBLIC_PATHS": "/public"}, nil)
	token := f.token(t, "pat", nil)

	w := f.serve(t, http.MethodGet, "/a/./b//c/../d", token, nil)
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
	}
	f.backend.lastHeader(t)
	f.backend.mu.Lock()
	path := f.backend.lastPath
	f.backend.mu.Unlock()
	if path != "/a/b/d" {
		t.Errorf("backend path = %q, want /a/b/d", path)
	}

	for _, target := range []string{"/public/..;/admin", "/public/..%5cadmin"} {
		before := f.backend.callCount()
		w := f.serve(t, http.MethodGet, target, "", nil)
		if w.Code != http.StatusBadRequest {
			t.Errorf("GET %s status = %d, want 400", target, w.Code)
		}
		if f.backend.callCount() != before {
			t.Errorf("GET %s reached the backend", target)
		}
	}
}

// A cross-site form post carries the token cookie; it must not end
// sessions.
func TestCookieLogoutRejectsCrossSite(t *testing.T) {
	f := newGatewayFixture(t, map[string]string{"TOKEN_COOKIE": "jwt"}, nil)
	token := f.token(t, "cora", nil)
	cookie := http.Header{"Cookie": {"jwt=" + token}}

	cross := cookie.Clone()
	cross.Set("Sec-Fetch-Site", "cross-site")
	if w := f.serve(t, http.MethodPost, "/.sessiongate/logout", "", cross); w.Code != http.StatusForbidden {
		t.Errorf("cross-site logout status = %d, want 403; body %s", w.Code, w.Body)
	}
	if w := f.serve(t, http.MethodGet, "/api", "", cookie); w.Code != http.StatusOK {
		t.Fatalf("session after a refused cross-site logout: status %d, want 200", w.Code)
	}

	same := cookie.Clone()
	same.Set("Sec-Fetch-Site", "same-origin")
	if w := f.serve(t, http.MethodPost, "/.sessiongate/logout", "", same); w.Code != http.StatusOK {
		t.Errorf("same-origin logout status = %d, want 200; body %s", w.Code, w.Body)
	}
}
