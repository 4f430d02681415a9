package sessions_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/internal/testutil"
	"github.com/sessiongate/sessiongate/sessions"
)

// The store contract suite runs every case of storeContractCases against
// every row of storeBackends. A backend row builds fresh, isolated stores.
// A case uses only the Store interface, plus a redisView when the store
// keeps its data in Redis, so a new backend (a Redis Cluster, say) is one
// more row.
//
// Time: cases that depend on expiry use short real lifetimes, because
// Redis expires keys on its own clock. Cases that depend only on the times
// passed to a Store method (touch and log intervals, the create window,
// revoked-before, eviction order) pass explicit times a few seconds apart,
// far inside the lifetime. Every store gets the same times.
//
// NOTE: miniredis is not a row. It is not in go.mod, and its keys expire
// only through FastForward, not on the real clock that these cases sleep
// on. A row for it needs the module and a per-row sleep hook that also
// calls FastForward.

// storeBackend is one row of the suite.
type storeBackend struct {
	name string
	// setup starts whatever the backend needs for one test and returns a
	// function that opens a fresh, empty store with the given policy.
	setup func(t *testing.T) openStore
}

// openStore opens a fresh, empty store that is closed when t ends.
type openStore func(t *testing.T, p sessions.Policy) storeUnderTest

// storeUnderTest is a store with the handles that store-specific checks use.
type storeUnderTest struct {
	sessions.Store
	// redis is set when the store keeps its data in Redis.
	redis *redisView
}

// storeBackends lists the stores the contract suite runs against.
var storeBackends = []storeBackend{
	{name: "memory", setup: setupMemory},
	{name: "redis", setup: setupRedis},
	{name: "cluster", setup: setupCluster},
}

func setupMemory(*testing.T) openStore {
	return func(t *testing.T, p sessions.Policy) storeUnderTest {
		st := sessions.NewMemoryStore(p)
		t.Cleanup(func() { st.Close() })
		return storeUnderTest{Store: st}
	}
}

// prefixSeq makes the key prefix of each Redis store unique, so that cases
// sharing one redis-server never see each other's keys.
var prefixSeq atomic.Int64

func setupRedis(t *testing.T) openStore {
	srv := testutil.StartRedis(t)
	return func(t *testing.T, p sessions.Policy) storeUnderTest {
		client := redis.NewClient(&redis.Options{Addr: srv.Addr(), DisableIdentity: true})
		prefix := fmt.Sprintf("contract%d:", prefixSeq.Add(1))
		st := sessions.NewRedisStore(client, prefix, p)
		t.Cleanup(func() { st.Close() })
		return storeUnderTest{Store: st, redis: &redisView{client: srv.Client(0), store: st}}
	}
}

// setupCluster starts a three-master Redis Cluster shared by the cases of
// one test. Each store gets a cluster client of its own, as a process would.
func setupCluster(t *testing.T) openStore {
	cluster := testutil.StartCluster(t)
	return func(t *testing.T, p sessions.Policy) storeUnderTest {
		client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cluster.Addrs(), DisableIdentity: true})
		prefix := fmt.Sprintf("contract%d:", prefixSeq.Add(1))
		st := sessions.NewRedisStore(client, prefix, p)
		t.Cleanup(func() { st.Close() })
		return storeUnderTest{Store: st, redis: &redisView{client: cluster.Client(), store: st}}
	}
}

// storeContractCases lists the cases of the suite. Each case opens its own
// stores.
var storeContractCases = []struct {
	name string
	run  func(t *testing.T, open openStore)
}{
	{"CreatesSessionWithinCreateWindow", testCreatesSessionWithinCreateWindow},
	{"RejectsTokenOlderThanCreateWindow", testRejectsTokenOlderThanCreateWindow},
	{"RefreshSlidesIdleExpiry", testRefreshSlidesIdleExpiry},
	{"IdleSessionExpires", testIdleSessionExpires},
	{"AbsoluteLifetimeEndsActiveSession", testAbsoluteLifetimeEndsActiveSession},
	{"RevokeLeavesMarker", testRevokeLeavesMarker},
	{"RevokeUserRejectsEarlierTokens", testRevokeUserRejectsEarlierTokens},
	{"ListReturnsOnlyLiveSessions", testListReturnsOnlyLiveSessions},
	{"MaxPerUserEvictsLeastRecentlyActive", testMaxPerUserEvictsLeastRecentlyActive},
	{"TouchIntervalSpacesActivityWrites", testTouchIntervalSpacesActivityWrites},
	{"BoundClientChangeRevokes", testBoundClientChangeRevokes},
	{"LogActivityOncePerInterval", testLogActivityOncePerInterval},
	{"ConcurrentAccessNeverOutlivesRevoke", testConcurrentAccessNeverOutlivesRevoke},
	{"SweepRemovesOnlyStaleState", testSweepRemovesOnlyStaleState},
	{"ConcurrentSweepsDoWorkOnce", testConcurrentSweepsDoWorkOnce},
}

func TestStoreContract(t *testing.T) {
	for _, backend := range storeBackends {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()
			open := backend.setup(t)
			for _, tc := range storeContractCases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, open)
				})
			}
		})
	}
}

// testPolicy returns the policy that cases start from, with lifetimes long
// enough that nothing expires unless a case shortens them.
func testPolicy() sessions.Policy {
	return sessions.Policy{
		Lifetime:     time.Minute,
		CreateWindow: time.Minute,
		MaxMarkerTTL: time.Hour,
	}
}

// testToken stands for one verified JWT.
type testToken struct {
	userID    string
	sessionID string
	issuedAt  time.Time
	expiresAt time.Time
}

// newTestToken returns a token of userID issued at iat, valid for an hour,
// with a session id of its own.
func newTestToken(t *testing.T, userID string, iat time.Time) testToken {
	t.Helper()
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		t.Fatalf("read random token bytes: %v", err)
	}
	iat = iat.Truncate(time.Second)
	return testToken{
		userID:    userID,
		sessionID: sessions.SessionID(sessions.TokenDigest(hex.EncodeToString(raw))),
		issuedAt:  iat,
		expiresAt: iat.Add(time.Hour),
	}
}

// defaultClient is the client of every request that does not name another.
var defaultClient = sessions.Client{IP: "192.0.2.10", UserAgent: "contract-test/1", Method: "GET", Path: "/orders"}

// request returns the AccessRequest of this token at now from client c.
func (tk testToken) request(now time.Time, c sessions.Client) sessions.AccessRequest {
	return sessions.AccessRequest{
		SessionID: tk.sessionID,
		UserID:    tk.userID,
		Email:     tk.userID + "@example.test",
		IssuedAt:  tk.issuedAt,
		ExpiresAt: tk.expiresAt,
		Client:    c,
		Now:       now,
	}
}

// mustAccess calls Access and fails the test on an error.
func mustAccess(t *testing.T, st sessions.Store, req sessions.AccessRequest) sessions.AccessResult {
	t.Helper()
	res, err := st.Access(context.Background(), req)
	if err != nil {
		t.Fatalf("Access(%s at %s) error: %v", req.SessionID, req.Now.Format(time.StampMilli), err)
	}
	return res
}

// wantStatus fails the test unless res has the status and reason.
func wantStatus(t *testing.T, res sessions.AccessResult, status sessions.Status, reason string) {
	t.Helper()
	if res.Status != status || res.Reason != reason {
		t.Fatalf("Access status = %v (reason %q), want %v (reason %q)", res.Status, res.Reason, status, reason)
	}
}

// listIDs returns the ids List returns for userID at now, in order.
func listIDs(t *testing.T, st sessions.Store, userID string, now time.Time) []string {
	t.Helper()
	list, err := st.List(context.Background(), userID, now)
	if err != nil {
		t.Fatalf("List(%q) error: %v", userID, err)
	}
	if list == nil {
		t.Fatalf("List(%q) = nil, want a non-nil slice", userID)
	}
	ids := make([]string, len(list))
	for i, s := range list {
		ids[i] = s.ID
	}
	return ids
}

func sameIDs(got, want []string) bool {
	return strings.Join(got, ",") == strings.Join(want, ",")
}

func testCreatesSessionWithinCreateWindow(t *testing.T, open openStore) {
	st := open(t, testPolicy())
	now := time.Now()
	tk := newTestToken(t, "alice", now.Add(-30*time.Second))

	res := mustAccess(t, st, tk.request(now, defaultClient))
	wantStatus(t, res, sessions.StatusCreated, "")
	if !res.LogActivity {
		t.Errorf("LogActivity of a new session = false, want true")
	}
	got, want := res.Session, sessions.Session{
		ID: tk.sessionID, UserID: "alice", Email: "alice@example.test",
		CreatedAt: now.Truncate(time.Millisecond).UTC(), LastActivity: now.Truncate(time.Millisecond).UTC(),
		ExpiresAt: now.Truncate(time.Millisecond).Add(time.Minute).UTC(),
		IP:        defaultClient.IP, UserAgent: defaultClient.UserAgent, Method: defaultClient.Method, Path: defaultClient.Path,
	}
	if !sessionsEqual(got, want) {
		t.Errorf("created session = %+v, want %+v", got, want)
	}

	res = mustAccess(t, st, tk.request(now.Add(time.Second), defaultClient))
	wantStatus(t, res, sessions.StatusActive, "")
	if !res.Session.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("CreatedAt after a refresh = %v, want %v", res.Session.CreatedAt, want.CreatedAt)
	}
}

// sessionsEqual compares sessions by instant rather than by time.Time
// representation.
func sessionsEqual(a, b sessions.Session) bool {
	times := a.CreatedAt.Equal(b.CreatedAt) && a.LastActivity.Equal(b.LastActivity) && a.ExpiresAt.Equal(b.ExpiresAt)
	a.CreatedAt, a.LastActivity, a.ExpiresAt = b.CreatedAt, b.LastActivity, b.ExpiresAt
	return times && a == b
}

func testRejectsTokenOlderThanCreateWindow(t *testing.T, open openStore) {
	p := testPolicy()
	p.Leeway = 5 * time.Second
	st := open(t, p)
	now := time.Now()

	for _, row := range []struct {
		name string
		age  time.Duration
		want sessions.Status
	}{
		{name: "inside window", age: p.CreateWindow - 2*time.Second, want: sessions.StatusCreated},
		// The leeway does not stretch the window: it would let a session
		// that just went idle be created again by its own token.
		{name: "past window within leeway", age: p.CreateWindow + p.Leeway/2, want: sessions.StatusExpired},
		{name: "past window and leeway", age: p.CreateWindow + p.Leeway + 2*time.Second, want: sessions.StatusExpired},
	} {
		t.Run(row.name, func(t *testing.T) {
			tk := newTestToken(t, "bob-"+strconv.Itoa(int(row.age.Seconds())), now.Add(-row.age))
			res := mustAccess(t, st, tk.request(now, defaultClient))
			if row.want == sessions.StatusExpired {
				wantStatus(t, res, sessions.StatusExpired, sessions.ReasonCreateWindow)
				if ids := listIDs(t, st, tk.userID, now); len(ids) != 0 {
					t.Errorf("List after a rejected create = %v, want none", ids)
				}
				if st.redis != nil {
					st.redis.wantNoSessionKeys(t, tk)
				}
				return
			}
			wantStatus(t, res, sessions.StatusCreated, "")
		})
	}
}

func testRefreshSlidesIdleExpiry(t *testing.T, open openStore) {
	p := testPolicy()
	p.Lifetime = 1500 * time.Millisecond
	p.CreateWindow = time.Minute
	st := open(t, p)
	start := time.Now()
	tk := newTestToken(t, "carol", start)
	wantStatus(t, mustAccess(t, st, tk.request(start, defaultClient)), sessions.StatusCreated, "")

	// Four refreshes 500ms apart keep the session alive for 2s, longer
	// than its 1.5s lifetime.
	for i := 1; i <= 4; i++ {
		time.Sleep(500 * time.Millisecond)
		now := time.Now()
		res := mustAccess(t, st, tk.request(now, defaultClient))
		wantStatus(t, res, sessions.StatusActive, "")
		if want := now.Add(p.Lifetime); res.Session.ExpiresAt.Before(want.Add(-time.Millisecond)) || res.Session.ExpiresAt.After(want) {
			t.Errorf("refresh %d: ExpiresAt = %v, want %v", i, res.Session.ExpiresAt, want)
		}
		if st.redis != nil {
			for _, key := range st.redis.sessionKeys(tk) {
				// Generous: the refresh happened a moment ago.
				if ttl := st.redis.pttl(t, key); ttl <= p.Lifetime-500*time.Millisecond || ttl > p.Lifetime {
					t.Errorf("refresh %d: PTTL(%s) = %v, want close to %v", i, key, ttl, p.Lifetime)
				}
			}
		}
	}
	if time.Since(start) <= p.Lifetime {
		t.Fatalf("refreshes took %v, want more than the %v lifetime for the test to mean anything", time.Since(start), p.Lifetime)
	}
}

func testIdleSessionExpires(t *testing.T, open openStore) {
	p := testPolicy()
	p.Lifetime = time.Second
	p.CreateWindow = time.Second
	st := open(t, p)
	now := time.Now()
	tk := newTestToken(t, "dave", now)
	wantStatus(t, mustAccess(t, st, tk.request(now, defaultClient)), sessions.StatusCreated, "")

	time.Sleep(p.Lifetime + 300*time.Millisecond)
	now = time.Now()
	if ids := listIDs(t, st, tk.userID, now); len(ids) != 0 {
		t.Errorf("List after idle expiry = %v, want none", ids)
	}
	if st.redis != nil {
		st.redis.wantNoSessionKeys(t, tk)
	}
	// The token is still valid, but too old to create the session again.
	wantStatus(t, mustAccess(t, st, tk.request(now, defaultClient)), sessions.StatusExpired, sessions.ReasonCreateWindow)
}

func testAbsoluteLifetimeEndsActiveSession(t *testing.T, open openStore) {
	p := testPolicy()
	p.Lifetime = 10 * time.Second
	p.AbsoluteLifetime = 2 * time.Second
	p.CreateWindow = time.Hour
	st := open(t, p)
	start := time.Now()
	tk := newTestToken(t, "erin", start)

	res := mustAccess(t, st, tk.request(start, defaultClient))
	wantStatus(t, res, sessions.StatusCreated, "")
	deadline := res.Session.CreatedAt.Add(p.AbsoluteLifetime)
	if res.Session.ExpiresAt.After(deadline) {
		t.Errorf("ExpiresAt = %v, want no later than the absolute deadline %v", res.Session.ExpiresAt, deadline)
	}

	time.Sleep(500 * time.Millisecond)
	wantStatus(t, mustAccess(t, st, tk.request(time.Now(), defaultClient)), sessions.StatusActive, "")

	time.Sleep(time.Until(deadline.Add(300 * time.Millisecond)))
	// The session was active a moment ago and the token is inside the
	// create window, yet neither may extend the session past its limit.
	wantStatus(t, mustAccess(t, st, tk.request(time.Now(), defaultClient)), sessions.StatusExpired, sessions.ReasonAbsoluteLifetime)
	wantStatus(t, mustAccess(t, st, tk.request(time.Now(), defaultClient)), sessions.StatusExpired, sessions.ReasonAbsoluteLifetime)
	if ids := listIDs(t, st, tk.userID, time.Now()); len(ids) != 0 {
		t.Errorf("List after the absolute lifetime = %v, want none", ids)
	}
}

func testRevokeLeavesMarker(t *testing.T, open openStore) {
	st := open(t, testPolicy())
	ctx := context.Background()
	now := time.Now()
	tk := newTestToken(t, "frank", now)
	tk.expiresAt = now.Add(10 * time.Minute)
	other := newTestToken(t, "frank", now)
	wantStatus(t, mustAccess(t, st, tk.request(now, defaultClient)), sessions.StatusCreated, "")
	wantStatus(t, mustAccess(t, st, other.request(now, defaultClient)), sessions.StatusCreated, "")

	if err := st.Revoke(ctx, "mallory", tk.sessionID, now); !errors.Is(err, sessions.ErrNotFound) {
		t.Fatalf("Revoke by another user = %v, want sessions.ErrNotFound", err)
	}
	if err := st.Revoke(ctx, tk.userID, tk.sessionID, now); err != nil {
		t.Fatalf("Revoke(live session) error: %v", err)
	}
	if err := st.Revoke(ctx, tk.userID, tk.sessionID, now); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("second Revoke = %v, want sessions.ErrNotFound", err)
	}

	later := now.Add(time.Second)
	wantStatus(t, mustAccess(t, st, tk.request(later, defaultClient)), sessions.StatusRevoked, sessions.ReasonMarker)
	if ids := listIDs(t, st, tk.userID, later); !sameIDs(ids, []string{other.sessionID}) {
		t.Errorf("List after Revoke = %v, want only the other session %v", ids, other.sessionID)
	}
	wantStatus(t, mustAccess(t, st, other.request(later, defaultClient)), sessions.StatusActive, "")

	if st.redis != nil {
		v := st.redis
		v.wantNoSessionKeys(t, tk)
		marker := v.key(tk.userID, "r:"+tk.sessionID)
		// The marker lives as long as the token: 10 minutes from the revoke.
		left := tk.expiresAt.Sub(now)
		if ttl := v.pttl(t, marker); ttl > left || ttl < left-5*time.Second {
			t.Errorf("PTTL(%s) = %v, want about %v", marker, ttl, left)
		}
	}
}

func testRevokeUserRejectsEarlierTokens(t *testing.T, open openStore) {
	st := open(t, testPolicy())
	ctx := context.Background()
	now := time.Now()
	issued := now.Add(-10 * time.Second)
	var grace []testToken
	for range 3 {
		tk := newTestToken(t, "grace", issued)
		wantStatus(t, mustAccess(t, st, tk.request(now, defaultClient)), sessions.StatusCreated, "")
		grace = append(grace, tk)
	}
	heidi := newTestToken(t, "heidi", issued)
	wantStatus(t, mustAccess(t, st, heidi.request(now, defaultClient)), sessions.StatusCreated, "")

	revokedAt := now.Add(time.Second)
	n, err := st.RevokeUser(ctx, "grace", revokedAt)
	if err != nil {
		t.Fatalf("RevokeUser error: %v", err)
	}
	if n != len(grace) {
		t.Errorf("RevokeUser = %d, want %d", n, len(grace))
	}

	after := revokedAt.Add(time.Second)
	for _, tk := range grace {
		wantStatus(t, mustAccess(t, st, tk.request(after, defaultClient)), sessions.StatusRevoked, sessions.ReasonMarker)
		if st.redis != nil {
			st.redis.wantNoSessionKeys(t, tk)
		}
	}
	if ids := listIDs(t, st, "grace", after); len(ids) != 0 {
		t.Errorf("List after RevokeUser = %v, want none", ids)
	}
	wantStatus(t, mustAccess(t, st, heidi.request(after, defaultClient)), sessions.StatusActive, "")

	// A token issued before the call but never seen is rejected too.
	unseen := newTestToken(t, "grace", revokedAt)
	if !unseen.issuedAt.Before(revokedAt) {
		unseen = newTestToken(t, "grace", revokedAt.Add(-time.Second))
	}
	wantStatus(t, mustAccess(t, st, unseen.request(after, defaultClient)), sessions.StatusRevoked, sessions.ReasonRevokedBefore)

	// iat has whole seconds, so the first token that can follow the call is
	// issued in the next second.
	fresh := newTestToken(t, "grace", revokedAt.Truncate(time.Second).Add(time.Second))
	wantStatus(t, mustAccess(t, st, fresh.request(fresh.issuedAt, defaultClient)), sessions.StatusCreated, "")
}

func testListReturnsOnlyLiveSessions(t *testing.T, open openStore) {
	p := testPolicy()
	p.Lifetime = 1500 * time.Millisecond
	st := open(t, p)
	start := time.Now()
	idle := newTestToken(t, "ivan", start)
	older := newTestToken(t, "ivan", start)
	newer := newTestToken(t, "ivan", start)
	for _, tk := range []testToken{idle, older, newer} {
		wantStatus(t, mustAccess(t, st, tk.request(start, defaultClient)), sessions.StatusCreated, "")
	}

	// Keep two sessions alive, refreshing "newer" last, while "idle" expires.
	for time.Since(start) < p.Lifetime+500*time.Millisecond {
		time.Sleep(400 * time.Millisecond)
		wantStatus(t, mustAccess(t, st, older.request(time.Now(), defaultClient)), sessions.StatusActive, "")
		wantStatus(t, mustAccess(t, st, newer.request(time.Now().Add(time.Millisecond), sessions.Client{IP: "198.51.100.7", UserAgent: "ua/2", Method: "POST", Path: "/cart"})), sessions.StatusActive, "")
	}

	now := time.Now()
	list, err := st.List(context.Background(), "ivan", now)
	if err != nil {
		t.Fatalf("List error: %v", err)
	}
	ids := make([]string, len(list))
	for i, s := range list {
		ids[i] = s.ID
	}
	if want := []string{newer.sessionID, older.sessionID}; !sameIDs(ids, want) {
		t.Fatalf("List = %v, want %v (newest activity first, no expired session)", ids, want)
	}
	first := list[0]
	if first.IP != "198.51.100.7" || first.UserAgent != "ua/2" || first.Method != "POST" || first.Path != "/cart" {
		t.Errorf("List()[0] client = %q %q %q %q, want the last request's", first.IP, first.UserAgent, first.Method, first.Path)
	}
	if !first.ExpiresAt.After(now) {
		t.Errorf("List()[0].ExpiresAt = %v, want after %v", first.ExpiresAt, now)
	}
	if st.redis != nil {
		// The index still holds the expired session: List filters it
		// without waiting for a sweep.
		if _, err := st.redis.client.ZScore(context.Background(), st.redis.key("ivan", "i"), idle.sessionID).Result(); err != nil {
			t.Errorf("ZSCORE of the expired session in the index: %v, want the entry still there before a sweep", err)
		}
	}
	if ids := listIDs(t, st, "nobody", now); len(ids) != 0 {
		t.Errorf("List(unknown user) = %v, want none", ids)
	}
}

func testMaxPerUserEvictsLeastRecentlyActive(t *testing.T, open openStore) {
	p := testPolicy()
	p.MaxPerUser = 2
	st := open(t, p)
	now := time.Now()
	first := newTestToken(t, "judy", now)
	second := newTestToken(t, "judy", now)
	third := newTestToken(t, "judy", now)

	wantStatus(t, mustAccess(t, st, first.request(now, defaultClient)), sessions.StatusCreated, "")
	wantStatus(t, mustAccess(t, st, second.request(now.Add(time.Second), defaultClient)), sessions.StatusCreated, "")
	wantStatus(t, mustAccess(t, st, first.request(now.Add(2*time.Second), defaultClient)), sessions.StatusActive, "")

	res := mustAccess(t, st, third.request(now.Add(3*time.Second), defaultClient))
	wantStatus(t, res, sessions.StatusCreated, "")
	if !sameIDs(res.Evicted, []string{second.sessionID}) {
		t.Errorf("Evicted = %v, want the least recently active session [%s]", res.Evicted, second.sessionID)
	}

	later := now.Add(4 * time.Second)
	wantStatus(t, mustAccess(t, st, second.request(later, defaultClient)), sessions.StatusRevoked, sessions.ReasonMarker)
	if ids := listIDs(t, st, "judy", later); !sameIDs(ids, []string{third.sessionID, first.sessionID}) && !sameIDs(ids, []string{first.sessionID, third.sessionID}) {
		t.Errorf("List = %v, want the two kept sessions %s and %s", ids, first.sessionID, third.sessionID)
	}
	if st.redis != nil {
		st.redis.wantNoSessionKeys(t, second)
	}
}

func testTouchIntervalSpacesActivityWrites(t *testing.T, open openStore) {
	p := testPolicy()
	p.TouchInterval = time.Second
	st := open(t, p)
	t0 := time.Now().Truncate(time.Millisecond)
	tk := newTestToken(t, "ken", t0)
	wantStatus(t, mustAccess(t, st, tk.request(t0, defaultClient)), sessions.StatusCreated, "")

	moved := sessions.Client{IP: "203.0.113.9", UserAgent: defaultClient.UserAgent, Method: "PUT", Path: "/moved"}
	newAgent := sessions.Client{IP: moved.IP, UserAgent: "contract-test/2", Method: "GET", Path: "/agent"}
	for _, step := range []struct {
		name       string
		at         time.Duration
		client     sessions.Client
		wantLast   time.Duration
		wantPath   string
		wantPrevIP string
		wantPrevUA string
	}{
		{name: "inside interval keeps activity", at: 300 * time.Millisecond, client: sessions.Client{IP: defaultClient.IP, UserAgent: defaultClient.UserAgent, Method: "GET", Path: "/inside"}, wantLast: 0, wantPath: defaultClient.Path},
		{name: "after interval rewrites activity", at: 1300 * time.Millisecond, client: sessions.Client{IP: defaultClient.IP, UserAgent: defaultClient.UserAgent, Method: "GET", Path: "/after"}, wantLast: 1300 * time.Millisecond, wantPath: "/after"},
		{name: "IP change rewrites at once", at: 1400 * time.Millisecond, client: moved, wantLast: 1400 * time.Millisecond, wantPath: "/moved", wantPrevIP: defaultClient.IP},
		{name: "user agent change rewrites at once", at: 1500 * time.Millisecond, client: newAgent, wantLast: 1500 * time.Millisecond, wantPath: "/agent", wantPrevUA: defaultClient.UserAgent},
		{name: "unchanged client inside interval", at: 1600 * time.Millisecond, client: newAgent, wantLast: 1500 * time.Millisecond, wantPath: "/agent"},
	} {
		t.Run(step.name, func(t *testing.T) {
			res := mustAccess(t, st, tk.request(t0.Add(step.at), step.client))
			wantStatus(t, res, sessions.StatusActive, "")
			if want := t0.Add(step.wantLast); !res.Session.LastActivity.Equal(want) {
				t.Errorf("LastActivity = +%v, want +%v", res.Session.LastActivity.Sub(t0), step.wantLast)
			}
			if res.Session.Path != step.wantPath {
				t.Errorf("Path = %q, want %q", res.Session.Path, step.wantPath)
			}
			if res.PreviousIP != step.wantPrevIP {
				t.Errorf("PreviousIP = %q, want %q", res.PreviousIP, step.wantPrevIP)
			}
			if res.PreviousUserAgent != step.wantPrevUA {
				t.Errorf("PreviousUserAgent = %q, want %q", res.PreviousUserAgent, step.wantPrevUA)
			}
		})
	}

	list, err := st.List(context.Background(), tk.userID, t0.Add(2*time.Second))
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %v, %v, want one session", list, err)
	}
	if got := list[0]; !got.LastActivity.Equal(t0.Add(1500*time.Millisecond)) || got.IP != newAgent.IP || got.UserAgent != newAgent.UserAgent {
		t.Errorf("List()[0] = %+v, want last activity +1.5s from %s %q", got, newAgent.IP, newAgent.UserAgent)
	}
}

// A bound session must end when its client changes, because the change may
// mean the token was stolen.
func testBoundClientChangeRevokes(t *testing.T, open openStore) {
	for _, row := range []struct {
		name       string
		bindIP     bool
		bindUA     bool
		client     sessions.Client
		wantReason string
	}{
		{name: "bound IP changes", bindIP: true, client: sessions.Client{IP: "203.0.113.50", UserAgent: defaultClient.UserAgent}, wantReason: sessions.ReasonIPChanged},
		{name: "bound user agent changes", bindUA: true, client: sessions.Client{IP: defaultClient.IP, UserAgent: "other-agent/9"}, wantReason: sessions.ReasonUserAgentChanged},
		{name: "both bound, both change", bindIP: true, bindUA: true, client: sessions.Client{IP: "203.0.113.51", UserAgent: "other-agent/9"}, wantReason: sessions.ReasonIPChanged},
	} {
		t.Run(row.name, func(t *testing.T) {
			p := testPolicy()
			p.BindIP, p.BindUserAgent = row.bindIP, row.bindUA
			st := open(t, p)
			now := time.Now()
			tk := newTestToken(t, "leo", now)
			wantStatus(t, mustAccess(t, st, tk.request(now, defaultClient)), sessions.StatusCreated, "")
			wantStatus(t, mustAccess(t, st, tk.request(now.Add(time.Second), defaultClient)), sessions.StatusActive, "")

			res := mustAccess(t, st, tk.request(now.Add(2*time.Second), row.client))
			wantStatus(t, res, sessions.StatusRevoked, row.wantReason)
			if row.client.IP != defaultClient.IP && res.PreviousIP != defaultClient.IP {
				t.Errorf("PreviousIP = %q, want %q", res.PreviousIP, defaultClient.IP)
			}

			// The original client cannot bring the session back either.
			wantStatus(t, mustAccess(t, st, tk.request(now.Add(3*time.Second), defaultClient)), sessions.StatusRevoked, sessions.ReasonMarker)
			if st.redis != nil {
				st.redis.wantNoSessionKeys(t, tk)
			}
		})
	}
}

func testLogActivityOncePerInterval(t *testing.T, open openStore) {
	for _, row := range []struct {
		name     string
		interval time.Duration
		// steps are request offsets from creation with the LogActivity
		// expected for each.
		steps []time.Duration
		want  []bool
	}{
		{
			name:     "one second interval",
			interval: time.Second,
			steps:    []time.Duration{0, 300 * time.Millisecond, 900 * time.Millisecond, 1100 * time.Millisecond, 1500 * time.Millisecond, 2200 * time.Millisecond},
			want:     []bool{true, false, false, true, false, true},
		},
		{
			name:     "zero interval logs every request",
			interval: 0,
			steps:    []time.Duration{0, time.Millisecond, 2 * time.Millisecond},
			want:     []bool{true, true, true},
		},
	} {
		t.Run(row.name, func(t *testing.T) {
			p := testPolicy()
			p.ActivityLogInterval = row.interval
			st := open(t, p)
			t0 := time.Now().Truncate(time.Millisecond)
			tk := newTestToken(t, "mia", t0)
			other := newTestToken(t, "mia", t0)
			for i, at := range row.steps {
				res := mustAccess(t, st, tk.request(t0.Add(at), defaultClient))
				if res.LogActivity != row.want[i] {
					t.Errorf("LogActivity at +%v = %v, want %v", at, res.LogActivity, row.want[i])
				}
			}
			// The throttle is per session: another session logs its first request.
			if res := mustAccess(t, st, other.request(t0.Add(row.steps[1]), defaultClient)); !res.LogActivity {
				t.Errorf("LogActivity of another session's first request = false, want true")
			}
		})
	}
}

// A request in flight while its session is revoked must never bring the
// session back, or a logout would not end the token's use.
func testConcurrentAccessNeverOutlivesRevoke(t *testing.T, open openStore) {
	st := open(t, testPolicy())
	tk := newTestToken(t, "nina", time.Now())
	const (
		workers   = 8
		perWorker = 150
	)
	var (
		revoked   atomic.Bool
		created   atomic.Int64
		accesses  atomic.Int64
		wg        sync.WaitGroup
		failures  = make(chan string, workers)
		startGate = make(chan struct{})
	)
	for w := range workers {
		wg.Go(func() {
			<-startGate
			client := defaultClient
			client.Path = "/worker/" + strconv.Itoa(w)
			for range perWorker {
				afterRevoke := revoked.Load()
				res, err := st.Access(context.Background(), tk.request(time.Now(), client))
				accesses.Add(1)
				if err != nil {
					failures <- fmt.Sprintf("Access error: %v", err)
					return
				}
				if res.Status == sessions.StatusCreated {
					created.Add(1)
				}
				if afterRevoke && res.Status != sessions.StatusRevoked {
					failures <- fmt.Sprintf("Access after Revoke returned = %v (reason %q), want revoked", res.Status, res.Reason)
					return
				}
				if !afterRevoke && res.Status != sessions.StatusCreated && res.Status != sessions.StatusActive && res.Status != sessions.StatusRevoked {
					failures <- fmt.Sprintf("Access = %v (reason %q), want active, created or revoked", res.Status, res.Reason)
					return
				}
			}
		})
	}
	close(startGate)

	// Revoke while the workers are still running.
	deadline := time.Now().Add(10 * time.Second)
	for accesses.Load() < workers*perWorker/4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := st.Revoke(context.Background(), tk.userID, tk.sessionID, time.Now()); err != nil {
		t.Errorf("Revoke during concurrent access error: %v", err)
	}
	revoked.Store(true)
	wg.Wait()
	close(failures)

	for msg := range failures {
		t.Error(msg)
	}
	if n := created.Load(); n != 1 {
		t.Errorf("sessions created by %d concurrent requests = %d, want 1", workers*perWorker, n)
	}
	if n := accesses.Load(); n < workers*perWorker/4+workers {
		t.Errorf("accesses = %d, want the revoke to land while workers were running", n)
	}
	if ids := listIDs(t, st, tk.userID, time.Now()); len(ids) != 0 {
		t.Errorf("List after Revoke = %v, want none", ids)
	}
	if st.redis != nil {
		st.redis.wantNoSessionKeys(t, tk)
		st.redis.wantEveryKeyHasTTL(t)
	}
}

// staleState makes one stale index entry the way real traffic does: of two
// sessions of one user, one goes idle and expires while the other is kept
// alive. Both stores must then report and remove that entry. It returns the
// live token.
func staleState(t *testing.T, st sessions.Store, userID string, lifetime time.Duration) (live testToken) {
	t.Helper()
	start := time.Now()
	idle := newTestToken(t, userID, start)
	live = newTestToken(t, userID, start)
	wantStatus(t, mustAccess(t, st, idle.request(start, defaultClient)), sessions.StatusCreated, "")
	wantStatus(t, mustAccess(t, st, live.request(start, defaultClient)), sessions.StatusCreated, "")
	for time.Since(start) < lifetime+500*time.Millisecond {
		time.Sleep(400 * time.Millisecond)
		wantStatus(t, mustAccess(t, st, live.request(time.Now(), defaultClient)), sessions.StatusActive, "")
	}
	return live
}

// plantedState lists what plantBrokenKeys wrote.
type plantedState struct {
	removed map[string]int
	// users counts the planted index keys, which the sweep counts as users.
	users int
	// foreign are keys outside the store's prefix that must survive.
	foreign []string
}

// plantBrokenKeys writes states no store method leaves behind but a crash,
// an old version or an operator can: a session key without a TTL, an index
// entry without its session and metadata without its session. Keys outside
// the prefix, with and without a TTL, must survive the sweep.
func (v *redisView) plantBrokenKeys(t *testing.T) plantedState {
	t.Helper()
	ctx := context.Background()
	ghost := newTestToken(t, "planted-ghost", time.Now())
	noTTL := newTestToken(t, "planted-no-ttl", time.Now())
	orphan := newTestToken(t, "planted-orphan", time.Now())
	prefix := v.store.Prefix()
	foreign := []string{
		"foreign:" + strings.TrimPrefix(v.key(noTTL.userID, "s:"+noTTL.sessionID), prefix),
		strings.TrimSuffix(prefix, ":") + "-lookalike:{x}:s:" + noTTL.sessionID,
	}

	_, err := v.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, v.key(noTTL.userID, "s:"+noTTL.sessionID), "u", noTTL.userID, "c", time.Now().UnixMilli())
		p.ZAdd(ctx, v.key(ghost.userID, "i"), redis.Z{Score: float64(time.Now().Add(time.Minute).UnixMilli()), Member: ghost.sessionID})
		p.PExpire(ctx, v.key(ghost.userID, "i"), time.Minute)
		p.HSet(ctx, v.key(orphan.userID, "m:"+orphan.sessionID), "l", time.Now().UnixMilli(), "ip", "192.0.2.99")
		p.PExpire(ctx, v.key(orphan.userID, "m:"+orphan.sessionID), time.Minute)
		p.HSet(ctx, foreign[0], "u", "someone")
		p.Set(ctx, foreign[1], "x", time.Minute)
		return nil
	})
	if err != nil {
		t.Fatalf("plant broken keys: %v", err)
	}
	return plantedState{
		removed: map[string]int{sessions.RemovedNoTTL: 1, sessions.RemovedStaleIndexEntry: 1, sessions.RemovedOrphanMetadata: 1},
		users:   1,
		foreign: foreign,
	}
}

var removalKinds = []string{sessions.RemovedNoTTL, sessions.RemovedOrphanMetadata, sessions.RemovedStaleIndexEntry}

func testSweepRemovesOnlyStaleState(t *testing.T, open openStore) {
	p := testPolicy()
	p.Lifetime = 1500 * time.Millisecond
	st := open(t, p)
	ctx := context.Background()
	if _, ok, err := st.LastSweep(ctx); err != nil || ok {
		t.Fatalf("LastSweep before any sweep = ok %v, err %v, want ok false", ok, err)
	}
	live := staleState(t, st, "olga", p.Lifetime)
	wantRemoved := map[string]int{sessions.RemovedStaleIndexEntry: 1}
	wantUsers := 1
	var planted plantedState
	if st.redis != nil {
		planted = st.redis.plantBrokenKeys(t)
		for kind, n := range planted.removed {
			wantRemoved[kind] += n
		}
		wantUsers += planted.users
	}

	report, err := st.Sweep(ctx, time.Now())
	if err != nil {
		t.Fatalf("Sweep error: %v", err)
	}
	if report.Skipped {
		t.Fatalf("Sweep skipped with no other sweeper running")
	}
	for _, kind := range removalKinds {
		if report.Removed[kind] != wantRemoved[kind] {
			t.Errorf("Sweep Removed[%s] = %d, want %d", kind, report.Removed[kind], wantRemoved[kind])
		}
	}
	if report.Sessions != 1 {
		t.Errorf("Sweep Sessions = %d, want 1", report.Sessions)
	}
	if report.Users != wantUsers {
		t.Errorf("Sweep Users = %d, want %d", report.Users, wantUsers)
	}

	wantStatus(t, mustAccess(t, st, live.request(time.Now(), defaultClient)), sessions.StatusActive, "")
	if ids := listIDs(t, st, "olga", time.Now()); !sameIDs(ids, []string{live.sessionID}) {
		t.Errorf("List after Sweep = %v, want [%s]", ids, live.sessionID)
	}
	if v := st.redis; v != nil {
		for _, key := range planted.foreign {
			if !v.exists(t, key) {
				t.Errorf("key %s outside the prefix was removed by Sweep", key)
			}
		}
		for _, key := range v.sessionKeys(live) {
			if !v.exists(t, key) {
				t.Errorf("key %s of the live session was removed by Sweep", key)
			}
		}
		v.wantEveryKeyHasTTL(t)
		if n := v.client.ZCard(ctx, v.key("olga", "i")).Val(); n != 1 {
			t.Errorf("ZCARD of the swept index = %d, want 1", n)
		}
	}

	last, ok, err := st.LastSweep(ctx)
	if err != nil || !ok {
		t.Fatalf("LastSweep after a sweep = ok %v, err %v, want the report", ok, err)
	}
	if !last.StartedAt.Equal(report.StartedAt) || last.RemovedTotal() != report.RemovedTotal() || last.Sessions != report.Sessions {
		t.Errorf("LastSweep = %+v, want %+v", last, report)
	}

	again, err := st.Sweep(ctx, time.Now())
	if err != nil {
		t.Fatalf("second Sweep error: %v", err)
	}
	if again.RemovedTotal() != 0 {
		t.Errorf("second Sweep Removed = %v, want nothing left to remove", again.Removed)
	}
}

func testConcurrentSweepsDoWorkOnce(t *testing.T, open openStore) {
	p := testPolicy()
	p.Lifetime = 1500 * time.Millisecond
	// Two stores on the same data stand for two processes.
	st := open(t, p)
	peer := st.Store
	if st.redis != nil {
		peer = st.redis.peer(t, p)
	}
	staleState(t, st, "pavel", p.Lifetime)
	want := 1
	if st.redis != nil {
		for _, n := range st.redis.plantBrokenKeys(t).removed {
			want += n
		}
	}

	reports := make([]sessions.SweepReport, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, s := range []sessions.Store{st.Store, peer} {
		wg.Go(func() { reports[i], errs[i] = s.Sweep(context.Background(), time.Now()) })
	}
	wg.Wait()

	total, ran := 0, 0
	for i := range reports {
		if errs[i] != nil {
			t.Fatalf("Sweep %d error: %v", i, errs[i])
		}
		total += reports[i].RemovedTotal()
		if !reports[i].Skipped {
			ran++
		}
	}
	if total != want {
		t.Errorf("removals by two concurrent sweeps = %d, want %d (each once)", total, want)
	}
	if ran == 0 {
		t.Errorf("both concurrent sweeps skipped, want one to run")
	}
}

// redisView reads and writes the keys of one RedisStore directly, for the
// checks that only a Redis store supports.
type redisView struct {
	client redis.UniversalClient
	store  *sessions.RedisStore
}

// key returns the key of userID with suffix: "i", "rb", or "s:", "m:" and
// "r:" followed by a session id.
func (v *redisView) key(userID, suffix string) string {
	return v.store.UserKeyBase(userID) + suffix
}

// sessionKeys returns the session, metadata and index keys of a token.
func (v *redisView) sessionKeys(tk testToken) []string {
	return []string{v.key(tk.userID, "s:"+tk.sessionID), v.key(tk.userID, "m:"+tk.sessionID), v.key(tk.userID, "i")}
}

// peer returns a second store on the same Redis data with its own client
// and sweep lock owner, as another process would have.
func (v *redisView) peer(t *testing.T, p sessions.Policy) *sessions.RedisStore {
	t.Helper()
	var client redis.UniversalClient
	switch c := v.client.(type) {
	case *redis.ClusterClient:
		client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Options().Addrs, DisableIdentity: true})
	default:
		client = redis.NewClient(&redis.Options{Addr: c.(*redis.Client).Options().Addr, DisableIdentity: true})
	}
	st := sessions.NewRedisStore(client, v.store.Prefix(), p)
	t.Cleanup(func() { st.Close() })
	return st
}

// wantNoSessionKeys fails unless the token's session and metadata keys are
// gone and the index has no entry for it.
func (v *redisView) wantNoSessionKeys(t *testing.T, tk testToken) {
	t.Helper()
	for _, key := range v.sessionKeys(tk)[:2] {
		if v.exists(t, key) {
			t.Errorf("key %s still exists, want it gone with its session", key)
		}
	}
	_, err := v.client.ZScore(context.Background(), v.key(tk.userID, "i"), tk.sessionID).Result()
	if !errors.Is(err, redis.Nil) {
		t.Errorf("ZSCORE %s %s = err %v, want no index entry", v.key(tk.userID, "i"), tk.sessionID, err)
	}
}

func (v *redisView) exists(t *testing.T, key string) bool {
	t.Helper()
	n, err := v.client.Exists(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("EXISTS %s: %v", key, err)
	}
	return n == 1
}

func (v *redisView) pttl(t *testing.T, key string) time.Duration {
	t.Helper()
	ttl, err := v.client.PTTL(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("PTTL %s: %v", key, err)
	}
	return ttl
}

// keys returns every key under the store's prefix, from every master when
// the client is a cluster client.
func (v *redisView) keys(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	match := v.store.Prefix() + "*" // test prefixes contain no glob characters
	var (
		mu  sync.Mutex
		out []string
	)
	scan := func(ctx context.Context, node redis.UniversalClient) error {
		iter := node.Scan(ctx, 0, match, 500).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			out = append(out, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	if cluster, ok := v.client.(*redis.ClusterClient); ok {
		err = cluster.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return scan(ctx, node) })
	} else {
		err = scan(ctx, v.client)
	}
	if err != nil {
		t.Fatalf("scan keys %s: %v", match, err)
	}
	return out
}

// wantEveryKeyHasTTL fails for each key under the prefix without a TTL,
// because such a key would stay in Redis forever.
func (v *redisView) wantEveryKeyHasTTL(t *testing.T) {
	t.Helper()
	for _, key := range v.keys(t) {
		if ttl := v.pttl(t, key); ttl == -1 {
			t.Errorf("key %s has no TTL", key)
		}
	}
}
