package proxy

import (
	"net/http"
	"strings"
)

// headerFilter removes client-supplied identity headers. Names match in any
// letter case and with "_" for "-", because PHP and CGI backends turn both
// X-User-Id and X_User_Id into HTTP_X_USER_ID.
type headerFilter struct {
	names []string // lower case, "-" for "_"
}

func newHeaderFilter(names ...string) headerFilter {
	var f headerFilter
	for _, n := range names {
		f.names = append(f.names, strings.ToLower(strings.ReplaceAll(n, "_", "-")))
	}
	return f
}

// matches reports whether name is one of the filtered names in any
// spelling. It compares byte by byte so that the request path allocates
// nothing.
func (f headerFilter) matches(name string) bool {
	for _, want := range f.names {
		if len(want) == len(name) && foldEqual(want, name) {
			return true
		}
	}
	return false
}

// foldEqual compares want (normalized) with name, folding ASCII case and
// reading "_" as "-".
func foldEqual(want, name string) bool {
	for i := 0; i < len(want); i++ {
		c := name[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '_' {
			c = '-'
		}
		if c != want[i] {
			return false
		}
	}
	return true
}

// strip deletes every filtered header from h, whatever its spelling.
func (f headerFilter) strip(h http.Header) {
	for name := range h {
		if f.matches(name) {
			delete(h, name)
		}
	}
}
