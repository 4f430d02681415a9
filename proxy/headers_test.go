package proxy

import (
	"net/http"
	"reflect"
	"sort"
	"testing"
)

func defaultIdentityFilter() headerFilter {
	return newHeaderFilter("X-User-Id", "X-User-Email", "X-Session-Id", "X-User-Role")
}

// PHP and CGI backends read X-User-Id, x-user-id and X_User_Id as the same
// variable, so every one of these spellings must be filtered.
func TestHeaderFilterMatchesEverySpelling(t *testing.T) {
	f := defaultIdentityFilter()
	for _, name := range []string{
		"X-User-Id", "x-user-id", "X-USER-ID", "x-User-iD",
		"X_User_Id", "x_user_id", "X_USER_ID", "X-User_Id", "X_User-Id",
		"X-User-Email", "x_user_email", "X-USER_EMAIL",
		"X-Session-Id", "x_session_id",
		"X-User-Role", "x_user_role",
	} {
		t.Run(name, func(t *testing.T) {
			if !f.matches(name) {
				t.Errorf("matches(%q) = false, want true", name)
			}
		})
	}
}

func TestHeaderFilterMatchesNothingElse(t *testing.T) {
	f := defaultIdentityFilter()
	for _, name := range []string{
		"", "X", "X-User", "X-User-I", "X-User-Ids", "X-User-Id2", "XX-User-Id",
		"X-Userid", "XUser-Id", "X.User.Id", "X User Id", "X-User-Id ",
		"Y-User-Id", "X-User-Emails", "X-User-Email-Verified", "X-Session",
		"Authorization", "Cookie", "X-Forwarded-For", "User-Agent",
	} {
		t.Run(name, func(t *testing.T) {
			if f.matches(name) {
				t.Errorf("matches(%q) = true, want false", name)
			}
		})
	}
}

func TestHeaderFilterNormalizesConfiguredNames(t *testing.T) {
	f := newHeaderFilter("x_remote_user")
	for _, name := range []string{"X-Remote-User", "X_REMOTE_USER", "x-remote_user"} {
		if !f.matches(name) {
			t.Errorf("filter of x_remote_user: matches(%q) = false, want true", name)
		}
	}
}

func TestHeaderFilterStripKeepsOtherHeaders(t *testing.T) {
	f := defaultIdentityFilter()
	// Keys are set directly, as a server records names it could not
	// canonicalize, so the map holds several spellings at once.
	h := http.Header{
		"X-User-Id":     {"attacker", "second"},
		"x-user-id":     {"lower"},
		"X_user_id":     {"underscore"},
		"X_User_Email":  {"evil@example.test"},
		"X-Session-Id":  {"forged"},
		"X-User-Ids":    {"kept"},
		"Authorization": {"Bearer abc"},
		"Accept":        {"*/*"},
	}
	f.strip(h)

	var got []string
	for name := range h {
		got = append(got, name)
	}
	sort.Strings(got)
	want := []string{"Accept", "Authorization", "X-User-Ids"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("headers after strip = %v, want %v", got, want)
	}
}
