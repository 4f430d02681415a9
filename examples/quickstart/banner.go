package main

import (
	"fmt"
	"io"
	"strings"
	"text/template"
)

// banner is the data of the start-up text.
type banner struct {
	PublicURL  string
	AdminURL   string
	BackendURL string
	Token      string
	// RedisURL is the Redis in use with its password hidden, or empty for
	// the in-memory store.
	RedisURL string
	// Ready is false when /readyz did not return 200 within readyWait.
	Ready bool
}

// step is one numbered command of the banner.
type step struct {
	Comment string
	Command string
}

// steps returns the curl commands the banner prints, in the order they
// should run: logout must come after the requests that need the session,
// and the last request shows the rejection of the revoked token.
func steps(publicURL string) []step {
	return []step{
		{"The request reaches the backend with X-User-Id, X-User-Email and X-Session-Id",
			curlLine(publicURL, "GET", "/hello", "", false)},
		{"A client-sent X-User-Id is removed: spoofed_x_user_id_arrived is false",
			curlLine(publicURL, "GET", "/hello", "X-User-Id: "+spoofedUserID, false)},
		{`Your live sessions, the current one marked "current": true`,
			curlLine(publicURL, "GET", "/.sessiongate/sessions", "", false)},
		{"Log out: sessiongate revokes the session",
			curlLine(publicURL, "POST", "/.sessiongate/logout", "", false)},
		{`The first request again: 401 with "error": "session_revoked"`,
			curlLine(publicURL, "GET", "/hello", "", true)},
	}
}

// curlLine returns a curl command that sends method to base+path with the
// sample token and, when not empty, one extra header. withStatus adds -i,
// which prints the status line and headers. The token is read from the
// shell variable TOKEN, so the line works in any POSIX shell.
func curlLine(base, method, path, header string, withStatus bool) string {
	parts := []string{"curl -s"}
	if withStatus {
		parts = append(parts, "-i")
	}
	if method != "GET" {
		parts = append(parts, "-X "+method)
	}
	parts = append(parts, `-H "Authorization: Bearer $TOKEN"`)
	if header != "" {
		parts = append(parts, `-H "`+header+`"`)
	}
	parts = append(parts, base+path)
	return strings.Join(parts, " ")
}

// The banner is for people, but two kinds of lines stay stable for scripts
// and the test. The line that starts with "TOKEN=" contains the token, and
// each line that starts with "curl " is one step to run, in order.
var bannerTemplate = template.Must(template.New("banner").Funcs(template.FuncMap{
	"inc": func(i int) int { return i + 1 },
}).Parse(`
sessiongate quick start

For trying sessiongate out only. The sample backend and the sample token
are not part of the production path: in production, run cmd/sessiongate
in front of your own backend and let your own login issue the tokens.

  sessiongate     {{.PublicURL}}  public listener, forwards to the sample backend
  admin           {{.AdminURL}}  /healthz, /readyz, /metrics
  sample backend  {{.BackendURL}}  returns the identity headers it receives as JSON
{{- if .RedisURL}}
  session store   redis at {{.RedisURL}} (from REDIS_URL)
{{- else}}
  session store   memory: sessions end when this process stops
                  (set REDIS_URL=redis://HOST:PORT/DB to use Redis instead)
{{- end}}
{{- if not .Ready}}

WARNING: sessiongate is not ready: /readyz did not return 200 in time.
Until the session store answers, requests get 503 store_unavailable.
See the log above.
{{- end}}

The sample token belongs to demo-user (demo-user@example.com). It is valid
for 1 hour and signed with a random HS256 secret made at start, so it stops
working when this process stops. Paste this line into your shell first:

TOKEN={{.Token}}

Then run these in order:
{{range $i, $s := .Steps}}
# {{inc $i}}. {{$s.Comment}}
{{$s.Command}}
{{end}}
Press Ctrl-C to stop.
`))

// printBanner writes the start-up text to w.
func printBanner(w io.Writer, b banner) {
	data := struct {
		banner
		Steps []step
	}{b, steps(b.PublicURL)}
	if err := bannerTemplate.Execute(w, data); err != nil {
		// The template is fixed and its data are strings and a bool, so an
		// error here is a bug in this file.
		panic(fmt.Sprintf("render banner: %v", err))
	}
}
