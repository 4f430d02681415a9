package testutil

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/sessions"
)

// ErrorBody is the JSON body of a rejection.
type ErrorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// DecodeJSON unmarshals body into v and fails the test when it is not JSON.
func DecodeJSON(t testing.TB, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("decode JSON body %q: %v", body, err)
	}
}

// SessionIDOf returns the id of the session that token creates.
func SessionIDOf(token string) string {
	return sessions.SessionID(sessions.TokenDigest(token))
}

// TokenIssuedAt returns an HS256 token for user with the given iat and a
// lifetime of ttl from iat.
func TokenIssuedAt(t testing.TB, user string, iat time.Time, ttl time.Duration) string {
	t.Helper()
	claims := Claims(user)
	claims["iat"] = iat.Unix()
	claims["exp"] = iat.Add(ttl).Unix()
	return Sign(t, claims)
}

// SleepToNextSecond sleeps until the next whole second of the wall clock.
// A token minted afterwards has an iat later than any instant recorded
// before the call, because iat has a resolution of one second.
func SleepToNextSecond() {
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second).Sub(now) + time.Millisecond)
}

// LogLines parses the JSON log lines of output, skipping lines that are not
// JSON objects.
func LogLines(output string) []map[string]any {
	var lines []map[string]any
	for _, raw := range strings.Split(output, "\n") {
		var line map[string]any
		if json.Unmarshal([]byte(raw), &line) == nil {
			lines = append(lines, line)
		}
	}
	return lines
}

// FindLog returns the first log line whose fields equal every pair of
// want; ok is false when none does.
func FindLog(lines []map[string]any, want map[string]string) (line map[string]any, ok bool) {
	for _, line := range lines {
		match := true
		for k, v := range want {
			if s, _ := line[k].(string); s != v {
				match = false
				break
			}
		}
		if match {
			return line, true
		}
	}
	return nil, false
}
