package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/internal/testutil"
	"github.com/sessiongate/sessiongate/sessions"
)

// trackingDB is the Redis database that the tests below put in REDIS_URL,
// the same as the REDIS_SESSION_DB default.
const trackingDB = 2

// trackingPrefix is the default REDIS_PREFIX.
const trackingPrefix = "sessiongate:"

// sessionKeys names the Redis keys of one session of a user whose id needs
// no encoding in the hash tag (letters, digits, "-_.@+").
type sessionKeys struct {
	id                         string
	session, meta, index, mark string
}

func keysOf(user, token string) sessionKeys {
	id := sessions.SessionID(sessions.TokenDigest(token))
	base := trackingPrefix + "{" + user + "}:"
	return sessionKeys{id: id, session: base + "s:" + id, meta: base + "m:" + id, index: base + "i", mark: base + "r:" + id}
}

// gateEnv returns the base environment on backend and Redis with extra
// variables on top.
func gateEnv(backend *testutil.Backend, rdb *testutil.Redis, extra map[string]string) map[string]string {
	env := testutil.BaseEnv(backend.URL, rdb.URL(trackingDB))
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// clientHeader is the header of a request from a client at ip behind the
// trusted proxy 127.0.0.1, using userAgent.
func clientHeader(ip, userAgent string) http.Header {
	return http.Header{"X-Forwarded-For": {ip}, "User-Agent": {userAgent}}
}

// mustStatus sends a request and fails the test unless it gets want.
func mustStatus(t *testing.T, method, url, token string, header http.Header, want int) string {
	t.Helper()
	resp, body := testutil.Do(t, method, url, token, header)
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, url, resp.StatusCode, body, want)
	}
	return body
}

// wantRevoked checks that a request got the 401 session_revoked rejection.
func wantRevoked(t *testing.T, method, url, token string, header http.Header) {
	t.Helper()
	resp, body := testutil.Do(t, method, url, token, header)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("%s %s = %d %s, want 401", method, url, resp.StatusCode, body)
	}
	var got struct{ Error string }
	if err := json.Unmarshal([]byte(body), &got); err != nil || got.Error != "session_revoked" {
		t.Errorf("%s %s body = %s, want error session_revoked", method, url, body)
	}
}

func hashOf(t *testing.T, c *redis.Client, key string) map[string]string {
	t.Helper()
	h, err := c.HGetAll(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("HGETALL %s: %v", key, err)
	}
	return h
}

func keyExists(t *testing.T, c *redis.Client, key string) bool {
	t.Helper()
	n, err := c.Exists(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("EXISTS %s: %v", key, err)
	}
	return n == 1
}

func keyPTTL(t *testing.T, c *redis.Client, key string) time.Duration {
	t.Helper()
	d, err := c.PTTL(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("PTTL %s: %v", key, err)
	}
	return d
}

// msTime parses a millisecond Unix time stored by the access script.
func msTime(t *testing.T, key, field, v string) time.Time {
	t.Helper()
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("%s field %s = %q, want milliseconds since the epoch", key, field, v)
	}
	return time.UnixMilli(n)
}

// logEntries returns the JSON log lines of g whose msg is msg.
func logEntries(t *testing.T, g *testutil.Gate, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(g.Output(), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			continue
		}
		if entry["msg"] == msg {
			out = append(out, entry)
		}
	}
	return out
}

// waitLog waits up to timeout for a log line with msg and returns every
// such line.
func waitLog(t *testing.T, g *testutil.Gate, msg string, timeout time.Duration) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if entries := logEntries(t, g, msg); len(entries) > 0 {
			return entries
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q log line within %v", msg, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func checkFields(t *testing.T, what string, got map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s field %s = %v, want %v", what, k, got[k], v)
		}
	}
}

func TestTrackingMetadataFollowsClient(t *testing.T) {
	rdb := testutil.StartRedis(t)
	backend := testutil.StartBackend(t)
	gate := testutil.StartGate(t, gateEnv(backend, rdb, map[string]string{"TRUSTED_PROXIES": "127.0.0.1"}))
	client := rdb.Client(trackingDB)
	token := testutil.Token(t, "alice")
	keys := keysOf("alice", token)

	// The first request creates the session with the client behind the
	// trusted proxy, not the proxy itself.
	before := time.Now().Add(-time.Second)
	mustStatus(t, http.MethodGet, gate.URL+"/orders/1", token, clientHeader("203.0.113.7", "agent-one"), http.StatusOK)
	after := time.Now().Add(time.Second)

	sess := hashOf(t, client, keys.session)
	if sess["u"] != "alice" || sess["e"] != "alice@example.test" {
		t.Errorf("session hash user/email = %q/%q, want alice/alice@example.test", sess["u"], sess["e"])
	}
	created := msTime(t, keys.session, "c", sess["c"])
	if created.Before(before) || created.After(after) {
		t.Errorf("created = %v, want between %v and %v", created, before, after)
	}
	meta := hashOf(t, client, keys.meta)
	want := map[string]string{"ip": "203.0.113.7", "ua": "agent-one", "mt": "GET", "p": "/orders/1"}
	for k, v := range want {
		if meta[k] != v {
			t.Errorf("metadata %s = %q, want %q", k, meta[k], v)
		}
	}
	if last := msTime(t, keys.meta, "l", meta["l"]); !last.Equal(created) {
		t.Errorf("last activity = %v, want the creation time %v", last, created)
	}
	sessTTL, metaTTL := keyPTTL(t, client, keys.session), keyPTTL(t, client, keys.meta)
	if sessTTL < 7190*time.Second || metaTTL < 7190*time.Second {
		t.Errorf("PTTL session/metadata = %v/%v, want both about the 2h lifetime", sessTTL, metaTTL)
	}

	// A new IP and User-Agent are written at once, inside the default 15s
	// touch interval.
	time.Sleep(20 * time.Millisecond)
	mustStatus(t, http.MethodPost, gate.URL+"/cart", token, clientHeader("198.51.100.9", "agent-two"), http.StatusOK)
	meta = hashOf(t, client, keys.meta)
	want = map[string]string{"ip": "198.51.100.9", "ua": "agent-two", "mt": "POST", "p": "/cart"}
	for k, v := range want {
		if meta[k] != v {
			t.Errorf("after the client moved: metadata %s = %q, want %q", k, meta[k], v)
		}
	}
	if last := msTime(t, keys.meta, "l", meta["l"]); !last.After(created) {
		t.Errorf("after the client moved: last activity = %v, want after %v", last, created)
	}

	// The owner's view renders the same fields, times in RFC 3339 UTC.
	body := mustStatus(t, http.MethodGet, gate.URL+"/.sessiongate/sessions", token, clientHeader("198.51.100.9", "agent-two"), http.StatusOK)
	var list struct {
		Sessions []map[string]any `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list.Sessions) != 1 {
		t.Fatalf("GET /.sessiongate/sessions = %s (%v), want one session", body, err)
	}
	view := list.Sessions[0]
	checkFields(t, "session view", view, map[string]any{
		"id": keys.id, "user_id": "alice", "email": "alice@example.test",
		"ip": "198.51.100.9", "user_agent": "agent-two", "current": true,
	})
	for _, field := range []string{"created_at", "last_activity", "expires_at"} {
		s, _ := view[field].(string)
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || !strings.HasSuffix(s, "Z") {
			t.Errorf("session view %s = %q, want an RFC 3339 UTC time", field, s)
			continue
		}
		if field == "created_at" && !ts.Equal(created) {
			t.Errorf("session view created_at = %v, want %v", ts, created)
		}
	}
}

// A client that talks to the gate directly must not set its recorded IP.
func TestTrackingIgnoresUntrustedForwardedFor(t *testing.T) {
	rdb := testutil.StartRedis(t)
	backend := testutil.StartBackend(t)
	gate := testutil.StartGate(t, gateEnv(backend, rdb, nil))
	client := rdb.Client(trackingDB)
	token := testutil.Token(t, "alice")

	mustStatus(t, http.MethodGet, gate.URL+"/", token, clientHeader("203.0.113.7", "agent-one"), http.StatusOK)
	if ip := hashOf(t, client, keysOf("alice", token).meta)["ip"]; ip != "127.0.0.1" {
		t.Errorf("metadata ip = %q, want the TCP peer 127.0.0.1", ip)
	}
}

func TestTrackingTouchIntervalThrottlesLastActivity(t *testing.T) {
	rdb := testutil.StartRedis(t)
	backend := testutil.StartBackend(t)
	gate := testutil.StartGate(t, gateEnv(backend, rdb, map[string]string{
		"SESSION_LIFETIME":        "5s",
		"ACTIVITY_TOUCH_INTERVAL": "2s",
	}))
	client := rdb.Client(trackingDB)
	token := testutil.Token(t, "alice")
	keys := keysOf("alice", token)

	mustStatus(t, http.MethodGet, gate.URL+"/first", token, nil, http.StatusOK)
	first := hashOf(t, client, keys.meta)

	// Inside the interval: last activity and route stay, but the TTLs
	// still slide back to the full lifetime.
	time.Sleep(time.Second)
	mustStatus(t, http.MethodPost, gate.URL+"/second", token, nil, http.StatusOK)
	second := hashOf(t, client, keys.meta)
	if second["l"] != first["l"] {
		t.Errorf("last activity inside the touch interval = %s, want unchanged %s", second["l"], first["l"])
	}
	if second["mt"] != "GET" || second["p"] != "/first" {
		t.Errorf("route inside the touch interval = %s %s, want GET /first", second["mt"], second["p"])
	}
	for _, key := range []string{keys.session, keys.meta} {
		// Without the slide, 4s at most would be left of the 5s.
		if d := keyPTTL(t, client, key); d < 4500*time.Millisecond {
			t.Errorf("PTTL %s after a request inside the touch interval = %v, want > 4.5s", key, d)
		}
	}

	// After the interval the next request writes its time and route.
	time.Sleep(1200 * time.Millisecond)
	mustStatus(t, http.MethodPut, gate.URL+"/third", token, nil, http.StatusOK)
	third := hashOf(t, client, keys.meta)
	firstAt, thirdAt := msTime(t, keys.meta, "l", first["l"]), msTime(t, keys.meta, "l", third["l"])
	if gap := thirdAt.Sub(firstAt); gap < 2*time.Second {
		t.Errorf("last activity after the touch interval moved by %v, want >= 2s", gap)
	}
	if third["mt"] != "PUT" || third["p"] != "/third" {
		t.Errorf("route after the touch interval = %s %s, want PUT /third", third["mt"], third["p"])
	}
}

func TestTrackingIPChangeLogsWarning(t *testing.T) {
	rdb := testutil.StartRedis(t)
	backend := testutil.StartBackend(t)
	gate := testutil.StartGate(t, gateEnv(backend, rdb, map[string]string{"TRUSTED_PROXIES": "127.0.0.1"}))
	client := rdb.Client(trackingDB)
	token := testutil.Token(t, "alice")
	keys := keysOf("alice", token)

	mustStatus(t, http.MethodGet, gate.URL+"/", token, clientHeader("203.0.113.7", "agent-one"), http.StatusOK)
	mustStatus(t, http.MethodGet, gate.URL+"/", token, clientHeader("198.51.100.9", "agent-one"), http.StatusOK)

	warnings := waitLog(t, gate, "session ip changed", 2*time.Second)
	if len(warnings) != 1 {
		t.Fatalf("ip change warnings = %d, want 1", len(warnings))
	}
	checkFields(t, "ip change warning", warnings[0], map[string]any{
		"level": "warn", "session_id": keys.id, "user_id": "alice",
		"old_ip": "203.0.113.7", "new_ip": "198.51.100.9", "revoked": false,
	})
	if n := len(logEntries(t, gate, "session user agent changed")); n != 0 {
		t.Errorf("user agent warnings = %d, want 0 when only the IP changed", n)
	}
	if !keyExists(t, client, keys.session) {
		t.Errorf("session %s gone after an IP change without SESSION_BIND_IP", keys.session)
	}

	// The same client again is no change.
	mustStatus(t, http.MethodGet, gate.URL+"/", token, clientHeader("198.51.100.9", "agent-one"), http.StatusOK)
	if n := len(logEntries(t, gate, "session ip changed")); n != 1 {
		t.Errorf("ip change warnings after a repeat from the new IP = %d, want still 1", n)
	}
}

// With binding on, a token replayed from elsewhere loses its session.
func TestTrackingBindingRevokesOnChange(t *testing.T) {
	tests := []struct {
		name          string
		variable      string
		first, second http.Header
		warning       string
		oldField      string
		oldValue      string
	}{
		{name: "ip", variable: "SESSION_BIND_IP",
			first: clientHeader("203.0.113.7", "agent-one"), second: clientHeader("198.51.100.9", "agent-one"),
			warning: "session ip changed", oldField: "old_ip", oldValue: "203.0.113.7"},
		{name: "user agent", variable: "SESSION_BIND_USER_AGENT",
			first: clientHeader("203.0.113.7", "agent-one"), second: clientHeader("203.0.113.7", "agent-two"),
			warning: "session user agent changed", oldField: "old_user_agent", oldValue: "agent-one"},
	}
	rdb := testutil.StartRedis(t)
	backend := testutil.StartBackend(t)
	client := rdb.Client(trackingDB)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gate := testutil.StartGate(t, gateEnv(backend, rdb, map[string]string{
				"TRUSTED_PROXIES": "127.0.0.1",
				tt.variable:       "true",
			}))
			token := testutil.Token(t, "alice")
			keys := keysOf("alice", token)

			mustStatus(t, http.MethodGet, gate.URL+"/", token, tt.first, http.StatusOK)
			wantRevoked(t, http.MethodGet, gate.URL+"/", token, tt.second)

			for _, key := range []string{keys.session, keys.meta} {
				if keyExists(t, client, key) {
					t.Errorf("%s still exists after the bound value changed", key)
				}
			}
			if _, err := client.ZScore(context.Background(), keys.index, keys.id).Result(); err != redis.Nil {
				t.Errorf("ZSCORE %s %s = %v, want no entry", keys.index, keys.id, err)
			}
			if d := keyPTTL(t, client, keys.mark); d <= 0 {
				t.Errorf("PTTL of revocation marker %s = %v, want a marker with a TTL", keys.mark, d)
			}

			warnings := waitLog(t, gate, tt.warning, 2*time.Second)
			checkFields(t, tt.warning, warnings[0], map[string]any{
				"level": "warn", "session_id": keys.id, "user_id": "alice", tt.oldField: tt.oldValue, "revoked": true,
			})

			// The original client cannot bring the session back.
			wantRevoked(t, http.MethodGet, gate.URL+"/", token, tt.first)
			if keyExists(t, client, keys.session) {
				t.Errorf("session %s recreated by the original client", keys.session)
			}
		})
	}
}

func TestTrackingActivityLogSharedAcrossReplicas(t *testing.T) {
	rdb := testutil.StartRedis(t)
	backend := testutil.StartBackend(t)
	env := gateEnv(backend, rdb, map[string]string{"ACTIVITY_LOG_INTERVAL": "5s"})
	gates := []*testutil.Gate{testutil.StartGate(t, env), testutil.StartGate(t, env)}
	token := testutil.Token(t, "alice")
	keys := keysOf("alice", token)

	// Alternate between the replicas for a little more than one interval.
	// A throttle kept in process memory would log once per replica.
	start := time.Now()
	sent := 0
	for time.Since(start) < 6*time.Second {
		mustStatus(t, http.MethodGet, gates[sent%2].URL+"/feed", token, nil, http.StatusOK)
		sent++
		time.Sleep(100 * time.Millisecond)
	}
	if sent < 20 {
		t.Fatalf("sent %d requests in 6s, want at least 20 to cover both replicas", sent)
	}

	var lines []map[string]any
	for _, g := range gates {
		for _, e := range logEntries(t, g, "session activity") {
			if e["session_id"] == keys.id {
				lines = append(lines, e)
			}
		}
	}
	if len(lines) != 1 {
		t.Fatalf("\"session activity\" lines for the session across both replicas = %d in 6s, want 1", len(lines))
	}
	checkFields(t, "session activity", lines[0], map[string]any{
		"level": "info", "user_id": "alice", "email": "alice@example.test",
		"ip": "127.0.0.1", "method": "GET", "route": "/feed",
	})
}

func TestTrackingPerUserLimitEvictsLeastRecent(t *testing.T) {
	rdb := testutil.StartRedis(t)
	backend := testutil.StartBackend(t)
	gate := testutil.StartGate(t, gateEnv(backend, rdb, map[string]string{"SESSION_MAX_PER_USER": "2"}))
	client := rdb.Client(trackingDB)
	oldest, middle, newest := testutil.Token(t, "alice"), testutil.Token(t, "alice"), testutil.Token(t, "alice")

	// oldest is created first but used again after middle, so middle is
	// the least recently active when newest arrives.
	for _, token := range []string{oldest, middle, oldest, newest} {
		mustStatus(t, http.MethodGet, gate.URL+"/", token, nil, http.StatusOK)
		time.Sleep(20 * time.Millisecond)
	}

	wantRevoked(t, http.MethodGet, gate.URL+"/", middle, nil)
	mustStatus(t, http.MethodGet, gate.URL+"/", oldest, nil, http.StatusOK)
	mustStatus(t, http.MethodGet, gate.URL+"/", newest, nil, http.StatusOK)

	evicted := keysOf("alice", middle)
	for _, key := range []string{evicted.session, evicted.meta} {
		if keyExists(t, client, key) {
			t.Errorf("%s of the evicted session still exists", key)
		}
	}
	members, err := client.ZRange(context.Background(), evicted.index, 0, -1).Result()
	if err != nil {
		t.Fatalf("ZRANGE %s: %v", evicted.index, err)
	}
	wantMembers := map[string]bool{keysOf("alice", oldest).id: true, keysOf("alice", newest).id: true}
	if len(members) != 2 || !wantMembers[members[0]] || !wantMembers[members[1]] {
		t.Errorf("index %s = %v, want the oldest and newest sessions only", evicted.index, members)
	}

	lines := waitLog(t, gate, "session evicted by per-user limit", 2*time.Second)
	if len(lines) != 1 {
		t.Fatalf("eviction log lines = %d, want 1", len(lines))
	}
	checkFields(t, "eviction", lines[0], map[string]any{
		"session_id": evicted.id, "user_id": "alice", "new_session_id": keysOf("alice", newest).id,
	})
}

// cleanupReport decodes the JSON report that `sessiongate cleanup` prints
// on stdout. The log line on stderr comes before it in the combined output.
func cleanupReport(t *testing.T, output string) sessions.SweepReport {
	t.Helper()
	start := strings.Index(output, "{\n")
	if start < 0 {
		t.Fatalf("cleanup output has no indented JSON report:\n%s", output)
	}
	var report sessions.SweepReport
	if err := json.NewDecoder(strings.NewReader(output[start:])).Decode(&report); err != nil {
		t.Fatalf("decode cleanup report: %v\n%s", err, output)
	}
	return report
}

func TestCleanupRemovesJunkKeepsLiveKeys(t *testing.T) {
	rdb := testutil.StartRedis(t)
	backend := testutil.StartBackend(t)
	env := gateEnv(backend, rdb, map[string]string{"CLEANUP_INTERVAL": "0"})
	gate := testutil.StartGate(t, env)
	client := rdb.Client(trackingDB)
	ctx := context.Background()

	live := []string{testutil.Token(t, "alice"), testutil.Token(t, "alice")}
	for _, token := range live {
		mustStatus(t, http.MethodGet, gate.URL+"/", token, nil, http.StatusOK)
	}
	aliceIndex := keysOf("alice", live[0]).index

	// Junk the sweep must remove: a session without a TTL, an index entry
	// whose session is gone, and metadata without its session.
	noTTL := trackingPrefix + "{bob}:s:AAAAAAAAAAAAAAAAAAAAAA"
	ghost := "BBBBBBBBBBBBBBBBBBBBBB"
	orphan := trackingPrefix + "{alice}:m:CCCCCCCCCCCCCCCCCCCCCC"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("plant keys: %v", err)
		}
	}
	must(client.HSet(ctx, noTTL, "u", "bob", "c", time.Now().UnixMilli()).Err())
	must(client.ZAdd(ctx, aliceIndex, redis.Z{Score: float64(time.Now().Add(time.Hour).UnixMilli()), Member: ghost}).Err())
	must(client.HSet(ctx, orphan, "l", time.Now().UnixMilli(), "ip", "203.0.113.7").Err())
	must(client.Expire(ctx, orphan, time.Hour).Err())

	// Keys the sweep must leave alone: outside the prefix, and under the
	// prefix in another database.
	foreign := []string{"other:{bob}:s:AAAAAAAAAAAAAAAAAAAAAA", "laravel_cache:settings"}
	for _, key := range foreign {
		must(client.Set(ctx, key, "keep", 0).Err())
	}
	otherDB := rdb.Client(0)
	must(otherDB.HSet(ctx, noTTL, "u", "bob").Err())

	code, output := testutil.RunOnce(t, env, "cleanup")
	if code != 0 {
		t.Fatalf("sessiongate cleanup exit status = %d, want 0:\n%s", code, output)
	}
	report := cleanupReport(t, output)
	wantRemoved := map[string]int{sessions.RemovedNoTTL: 1, sessions.RemovedOrphanMetadata: 1, sessions.RemovedStaleIndexEntry: 1}
	for kind, n := range wantRemoved {
		if report.Removed[kind] != n {
			t.Errorf("report removed[%s] = %d, want %d; report %+v", kind, report.Removed[kind], n, report)
		}
	}
	if report.Skipped || report.Sessions != 2 || report.Users != 1 {
		t.Errorf("report skipped/sessions/users = %v/%d/%d, want false/2/1", report.Skipped, report.Sessions, report.Users)
	}
	if report.Remaining != report.Found-2 {
		t.Errorf("report remaining = %d, want found %d minus the 2 removed keys", report.Remaining, report.Found)
	}
	if !strings.Contains(output, `"msg":"cleanup finished"`) {
		t.Errorf("cleanup output lacks the \"cleanup finished\" log line:\n%s", output)
	}

	for _, key := range []string{noTTL, orphan} {
		if keyExists(t, client, key) {
			t.Errorf("planted key %s survived the sweep", key)
		}
	}
	if _, err := client.ZScore(ctx, aliceIndex, ghost).Result(); err != redis.Nil {
		t.Errorf("ZSCORE %s %s = %v, want the stale entry removed", aliceIndex, ghost, err)
	}
	for _, key := range foreign {
		if !keyExists(t, client, key) {
			t.Errorf("foreign key %s removed by the sweep", key)
		}
	}
	if !keyExists(t, otherDB, noTTL) {
		t.Errorf("key %s in database 0 removed by a sweep of database %d", noTTL, trackingDB)
	}
	for _, token := range live {
		keys := keysOf("alice", token)
		for _, key := range []string{keys.session, keys.meta} {
			if !keyExists(t, client, key) {
				t.Errorf("live key %s removed by the sweep", key)
			}
		}
		if _, err := client.ZScore(ctx, keys.index, keys.id).Result(); err != nil {
			t.Errorf("ZSCORE %s %s = %v, want the live entry kept", keys.index, keys.id, err)
		}
		mustStatus(t, http.MethodGet, gate.URL+"/", token, nil, http.StatusOK)
	}
}

func TestCleanupUnreachableRedisExitsOne(t *testing.T) {
	backend := testutil.StartBackend(t)
	port := testutil.FreePort(t) // nothing listens here
	env := testutil.BaseEnv(backend.URL, fmt.Sprintf("redis://127.0.0.1:%d/%d", port, trackingDB))

	code, output := testutil.RunOnce(t, env, "cleanup")
	if code != 1 {
		t.Fatalf("sessiongate cleanup exit status = %d, want 1:\n%s", code, output)
	}
	if !strings.Contains(output, "cannot reach Redis") || !strings.Contains(output, "connection refused") {
		t.Errorf("cleanup output = %q, want the reason: cannot reach Redis ... connection refused", output)
	}
	if strings.Contains(output, "cleanup finished") {
		t.Errorf("cleanup output claims a finished sweep:\n%s", output)
	}
}

func TestCleanupTickerSweepsAndLogs(t *testing.T) {
	rdb := testutil.StartRedis(t)
	backend := testutil.StartBackend(t)
	client := rdb.Client(trackingDB)
	ctx := context.Background()
	noTTL := trackingPrefix + "{bob}:s:AAAAAAAAAAAAAAAAAAAAAA"
	if err := client.HSet(ctx, noTTL, "u", "bob").Err(); err != nil {
		t.Fatalf("plant %s: %v", noTTL, err)
	}

	gate := testutil.StartGate(t, gateEnv(backend, rdb, map[string]string{"CLEANUP_INTERVAL": "1s"}))
	lines := waitLog(t, gate, "cleanup finished", 5*time.Second)
	checkFields(t, "cleanup finished", lines[0], map[string]any{"level": "info", "removed_no_ttl": float64(1)})
	for _, field := range []string{"found", "remaining", "duration", "removed_orphan_metadata", "removed_stale_index_entries"} {
		if _, ok := lines[0][field]; !ok {
			t.Errorf("cleanup finished line lacks field %s: %v", field, lines[0])
		}
	}
	if keyExists(t, client, noTTL) {
		t.Errorf("planted key %s survived the ticker sweep", noTTL)
	}
	if !keyExists(t, client, trackingPrefix+"sweep:last") {
		t.Errorf("no %ssweep:last report after a ticker sweep", trackingPrefix)
	}
	if keyExists(t, client, trackingPrefix+"sweep:lock") {
		t.Errorf("%ssweep:lock still held after the sweep finished", trackingPrefix)
	}

	// The ticker keeps going: a second sweep follows about a second later.
	deadline := time.Now().Add(4 * time.Second)
	for len(logEntries(t, gate, "cleanup finished")) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("one \"cleanup finished\" line in 4s after the first, want a sweep every 1s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTrackingRequestCostsOneRedisCommand(t *testing.T) {
	rdb := testutil.StartRedis(t)
	backend := testutil.StartBackend(t)
	// Tracking does the most work it can: every request rewrites the
	// metadata, logs activity and changes IP and User-Agent.
	gate := testutil.StartGate(t, gateEnv(backend, rdb, map[string]string{
		"TRUSTED_PROXIES":         "127.0.0.1",
		"ACTIVITY_TOUCH_INTERVAL": "0",
		"ACTIVITY_LOG_INTERVAL":   "0",
		"SESSION_MAX_PER_USER":    "3",
	}))
	client := rdb.Client(0)
	token := testutil.Token(t, "alice")

	// The first request creates the session and loads the script.
	mustStatus(t, http.MethodGet, gate.URL+"/", token, clientHeader("203.0.113.1", "agent-0"), http.StatusOK)

	monitor := testutil.StartMonitor(t, rdb.Addr())
	before := testutil.CommandCalls(t, client)
	const requests = 20
	for i := range requests {
		header := clientHeader(fmt.Sprintf("203.0.113.%d", i+2), fmt.Sprintf("agent-%d", i+1))
		mustStatus(t, http.MethodGet, gate.URL+"/items/"+strconv.Itoa(i), token, header, http.StatusOK)
	}
	after := testutil.CommandCalls(t, client)
	const marker = "sessiongate-cost-test-end"
	if err := client.Echo(context.Background(), marker).Err(); err != nil {
		t.Fatalf("ECHO: %v", err)
	}
	monitor.WaitFor(t, marker, 5*time.Second)

	if d := after["evalsha"] - before["evalsha"]; d != requests {
		t.Errorf("EVALSHA calls for %d requests = %d, want %d", requests, d, requests)
	}
	if d := after["eval"] - before["eval"]; d != 0 {
		t.Errorf("EVAL calls for %d requests = %d, want 0 once the script is cached", requests, d)
	}

	// Redis counts commands run inside the script in commandstats too, so
	// round trips are counted from MONITOR, which tags those as "lua". The
	// test's own client works in database 0, the gate in trackingDB.
	var fromGate []string
	for _, line := range monitor.Lines() {
		if strings.Contains(line, fmt.Sprintf(" [%d ", trackingDB)) {
			fromGate = append(fromGate, line)
		}
	}
	if len(fromGate) != requests {
		t.Errorf("commands the gate sent for %d requests = %d, want %d:\n%s", requests, len(fromGate), requests, strings.Join(fromGate, "\n"))
	}
	if got := len(logEntries(t, gate, "session activity")); got != requests {
		t.Errorf("\"session activity\" lines = %d, want %d with ACTIVITY_LOG_INTERVAL=0", got, requests)
	}
	if got := len(logEntries(t, gate, "session ip changed")); got != requests {
		t.Errorf("\"session ip changed\" lines = %d, want %d", got, requests)
	}
}

// plantSessions writes n session keys with a one-hour TTL, spread over 1000
// users, in one server-side script so that planting stays fast under -race.
func plantSessions(t *testing.T, c *redis.Client, n int) {
	t.Helper()
	const script = `
for i = 1, tonumber(ARGV[2]) do
  local key = ARGV[1] .. '{user' .. (i % 1000) .. '}:s:' .. string.format('%022d', i)
  redis.call('HSET', key, 'u', 'user' .. (i % 1000), 'c', '1')
  redis.call('PEXPIRE', key, 3600000)
end
return 1`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Eval(ctx, script, nil, trackingPrefix, n).Err(); err != nil {
		t.Fatalf("plant %d sessions: %v", n, err)
	}
}

// waitKey polls until key exists, for at most timeout.
func waitKey(t *testing.T, c *redis.Client, key string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !keyExists(t, c, key) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %v", key, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// An interrupted `sessiongate cleanup` must release the lock, because the
// other replicas would skip their sweeps until its TTL ran out.
func TestCleanupInterruptedReleasesLock(t *testing.T) {
	rdb := testutil.StartRedis(t)
	backend := testutil.StartBackend(t)
	client := rdb.Client(trackingDB)
	plantSessions(t, client, 300_000)

	cmd := exec.Command(testutil.Binary(t), "cleanup")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range testutil.BaseEnv(backend.URL, rdb.URL(trackingDB)) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var output strings.Builder
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sessiongate cleanup: %v", err)
	}
	waitKey(t, client, trackingPrefix+"sweep:lock", 10*time.Second)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatalf("send SIGINT: %v", err)
	}
	err := cmd.Wait()
	if keyExists(t, client, trackingPrefix+"sweep:last") {
		t.Fatalf("the sweep finished before SIGINT arrived; plant more keys:\n%s", output.String())
	}

	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Errorf("interrupted cleanup: wait = %v, want exit status 1\n%s", err, output.String())
	}
	if !strings.Contains(output.String(), "sweep stopped") {
		t.Errorf("interrupted cleanup output = %q, want a line saying the sweep stopped", output.String())
	}
	if keyExists(t, client, trackingPrefix+"sweep:lock") {
		t.Errorf("%ssweep:lock left behind by an interrupted cleanup", trackingPrefix)
	}
}

func TestCleanupTickerStopsQuietlyOnShutdown(t *testing.T) {
	rdb := testutil.StartRedis(t)
	backend := testutil.StartBackend(t)
	client := rdb.Client(trackingDB)
	plantSessions(t, client, 300_000)

	gate := testutil.StartGate(t, gateEnv(backend, rdb, map[string]string{"CLEANUP_INTERVAL": "1s"}))
	waitKey(t, client, trackingPrefix+"sweep:lock", 5*time.Second)
	gate.Signal(syscall.SIGTERM)
	if code, ok := gate.Wait(10 * time.Second); !ok || code != 0 {
		t.Fatalf("sessiongate after SIGTERM: exit status %d (exited: %v), want 0", code, ok)
	}
	if keyExists(t, client, trackingPrefix+"sweep:last") {
		t.Fatalf("the sweep finished before SIGTERM arrived; plant more keys")
	}

	if n := len(logEntries(t, gate, "cleanup failed")); n != 0 {
		t.Errorf("\"cleanup failed\" lines = %d after a shutdown during a sweep, want 0", n)
	}
	if n := len(logEntries(t, gate, "cleanup stopped by shutdown")); n != 1 {
		t.Errorf("\"cleanup stopped by shutdown\" lines = %d, want 1", n)
	}
	if keyExists(t, client, trackingPrefix+"sweep:lock") {
		t.Errorf("%ssweep:lock left behind by a shutdown during a sweep", trackingPrefix)
	}
}
