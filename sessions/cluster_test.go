package sessions_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/internal/testutil"
	"github.com/sessiongate/sessiongate/sessions"
)

// Checks that need a Redis Cluster. The store contract suite runs every
// store case on a cluster too, and these tests add what it does not check:
// where keys land, and that work spans every master.

// newClusterStore returns a store on c with a cluster client of its own.
func newClusterStore(t *testing.T, c *testutil.Cluster, prefix string, p sessions.Policy) *sessions.RedisStore {
	t.Helper()
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), DisableIdentity: true})
	st := sessions.NewRedisStore(client, prefix, p)
	t.Cleanup(func() { st.Close() })
	return st
}

// usersOnEveryNode returns one user id per master of c, at the master's
// index, chosen so that the user's keys under prefix hash to that master.
func usersOnEveryNode(t *testing.T, c *testutil.Cluster, prefix string) []string {
	t.Helper()
	// UserKeyBase needs no connection, so a store on an unused client
	// computes the keys.
	layout := sessions.NewRedisStore(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), prefix, testPolicy())
	defer layout.Close()

	users := make([]string, len(c.Addrs()))
	found := 0
	// The names and so their slots are fixed. For the prefixes below the
	// first few names already cover all three slot ranges.
	for i := 0; i < 64 && found < len(users); i++ {
		user := fmt.Sprintf("user-%d", i)
		node := c.NodeOf(layout.UserKeyBase(user) + "i")
		if users[node] == "" {
			users[node] = user
			found++
		}
	}
	if found < len(users) {
		t.Fatalf("users on each node = %q, want one on every node of %v", users, c.Addrs())
	}
	return users
}

// nodeKeys returns the keys matching pattern on one node only.
func nodeKeys(t *testing.T, node *redis.Client, pattern string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var keys []string
	iter := node.Scan(ctx, 0, pattern, 500).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN %s on %s: %v", pattern, node.Options().Addr, err)
	}
	slices.Sort(keys)
	return keys
}

// Every multi-key script runs on the master of the user's slot. A key of
// the same user in another slot would fail the script with a CROSSSLOT or
// "non local key" error.
func TestClusterServesUsersOnEveryNode(t *testing.T) {
	t.Parallel()
	cluster := testutil.StartCluster(t)
	const prefix = "users:"
	p := testPolicy()
	p.MaxPerUser = 2
	st := newClusterStore(t, cluster, prefix, p)
	ctx := context.Background()

	// One plain user per master, plus ids that the store must encode
	// into a tag: braces would otherwise cut the hash tag short.
	users := append(usersOnEveryNode(t, cluster, prefix), "{tenant-7}/bob", "ünïcode user", "}{")
	for _, user := range users {
		t.Run(user, func(t *testing.T) {
			now := time.Now()
			first := newTestToken(t, user, now)
			second := newTestToken(t, user, now)
			third := newTestToken(t, user, now)
			wantStatus(t, mustAccess(t, st, first.request(now, defaultClient)), sessions.StatusCreated, "")
			wantStatus(t, mustAccess(t, st, second.request(now.Add(time.Second), defaultClient)), sessions.StatusCreated, "")
			wantStatus(t, mustAccess(t, st, first.request(now.Add(2*time.Second), defaultClient)), sessions.StatusActive, "")

			res := mustAccess(t, st, third.request(now.Add(3*time.Second), defaultClient))
			wantStatus(t, res, sessions.StatusCreated, "")
			if !sameIDs(res.Evicted, []string{second.sessionID}) {
				t.Errorf("Evicted = %v, want [%s]", res.Evicted, second.sessionID)
			}
			later := now.Add(4 * time.Second)
			if ids := listIDs(t, st, user, later); len(ids) != 2 {
				t.Errorf("List = %v, want the two kept sessions", ids)
			}

			// Every key of the user sits on the master that owns its slot.
			owner := cluster.NodeOf(st.UserKeyBase(user) + "i")
			// A key base contains no SCAN MATCH pattern characters, because
			// userTag encodes every id with characters outside [A-Za-z0-9-_.@+].
			pattern := st.UserKeyBase(user) + "*"
			for i := range cluster.Addrs() {
				keys := nodeKeys(t, cluster.NodeClient(i), pattern)
				if i == owner && len(keys) == 0 {
					t.Errorf("keys %s on owning node %s = none, want the user's keys", pattern, cluster.Addrs()[i])
				}
				if i != owner && len(keys) != 0 {
					t.Errorf("keys %s on node %s = %v, want none: node %s owns the slot", pattern, cluster.Addrs()[i], keys, cluster.Addrs()[owner])
				}
			}

			if err := st.Revoke(ctx, user, first.sessionID, later); err != nil {
				t.Fatalf("Revoke error: %v", err)
			}
			wantStatus(t, mustAccess(t, st, first.request(later, defaultClient)), sessions.StatusRevoked, sessions.ReasonMarker)
			n, err := st.RevokeUser(ctx, user, later)
			if err != nil {
				t.Fatalf("RevokeUser error: %v", err)
			}
			if n != 1 {
				t.Errorf("RevokeUser = %d, want 1", n)
			}
			wantStatus(t, mustAccess(t, st, third.request(later.Add(time.Second), defaultClient)), sessions.StatusRevoked, sessions.ReasonMarker)
			if ids := listIDs(t, st, user, later.Add(time.Second)); len(ids) != 0 {
				t.Errorf("List after RevokeUser = %v, want none", ids)
			}
		})
	}
}

// The sweep must SCAN every master: a SCAN through the cluster client
// would reach one node only and leave the junk of the others in place.
func TestClusterSweepCoversEveryMaster(t *testing.T) {
	t.Parallel()
	cluster := testutil.StartCluster(t)
	const prefix = "sweep:"
	st := newClusterStore(t, cluster, prefix, testPolicy())
	ctx := context.Background()
	now := time.Now()
	users := usersOnEveryNode(t, cluster, prefix)

	// On every master: one live session, a session key without a TTL, metadata
	// without its session, and an index whose only entry has no session.
	type nodeState struct {
		live testToken
		junk []string
	}
	states := make([]nodeState, len(users))
	for i, user := range users {
		live := newTestToken(t, user, now)
		wantStatus(t, mustAccess(t, st, live.request(now, defaultClient)), sessions.StatusCreated, "")
		noTTL := newTestToken(t, user, now)
		orphan := newTestToken(t, user, now)
		ghostUser := user + "-ghost"
		ghost := newTestToken(t, ghostUser, now)
		base := st.UserKeyBase(user)
		states[i] = nodeState{live: live, junk: []string{base + "s:" + noTTL.sessionID, base + "m:" + orphan.sessionID}}

		// The ghost user may hash to another master; its index is junk
		// wherever it lands, and the totals below count it once.
		ghostIndex := st.UserKeyBase(ghostUser) + "i"
		node := cluster.NodeClient(i)
		if err := node.HSet(ctx, base+"s:"+noTTL.sessionID, "u", user, "c", now.UnixMilli()).Err(); err != nil {
			t.Fatalf("plant session without TTL on %s: %v", node.Options().Addr, err)
		}
		if err := node.HSet(ctx, base+"m:"+orphan.sessionID, "l", now.UnixMilli()).Err(); err != nil {
			t.Fatalf("plant orphan metadata on %s: %v", node.Options().Addr, err)
		}
		if err := node.PExpire(ctx, base+"m:"+orphan.sessionID, time.Minute).Err(); err != nil {
			t.Fatalf("expire orphan metadata on %s: %v", node.Options().Addr, err)
		}
		owner := cluster.NodeClient(cluster.NodeOf(ghostIndex))
		if err := owner.ZAdd(ctx, ghostIndex, redis.Z{Score: float64(now.Add(time.Minute).UnixMilli()), Member: ghost.sessionID}).Err(); err != nil {
			t.Fatalf("plant stale index entry on %s: %v", owner.Options().Addr, err)
		}
		if err := owner.PExpire(ctx, ghostIndex, time.Minute).Err(); err != nil {
			t.Fatalf("expire stale index on %s: %v", owner.Options().Addr, err)
		}
		states[i].junk = append(states[i].junk, ghostIndex)
	}

	report, err := st.Sweep(ctx, time.Now())
	if err != nil {
		t.Fatalf("Sweep error: %v", err)
	}
	want := map[string]int{sessions.RemovedNoTTL: 3, sessions.RemovedOrphanMetadata: 3, sessions.RemovedStaleIndexEntry: 3}
	if !maps.Equal(report.Removed, want) {
		t.Errorf("Sweep Removed = %v, want %v", report.Removed, want)
	}
	// Found: per master the live session's three keys, the key without a
	// TTL and the orphan metadata; and three ghost indexes somewhere.
	if report.Found != 3*5+3 {
		t.Errorf("Sweep Found = %d, want %d", report.Found, 3*5+3)
	}
	if report.Sessions != 3 {
		t.Errorf("Sweep Sessions = %d, want 3", report.Sessions)
	}
	if report.Users != 6 {
		t.Errorf("Sweep Users = %d, want 6 (three live, three ghost indexes)", report.Users)
	}
	if report.Remaining != 9 {
		t.Errorf("Sweep Remaining = %d, want 9, the keys of the three live sessions", report.Remaining)
	}

	view := &redisView{client: cluster.Client(), store: st}
	for i, state := range states {
		for _, key := range state.junk {
			if view.exists(t, key) {
				t.Errorf("junk key %s planted for node %s survived Sweep", key, cluster.Addrs()[i])
			}
		}
		for _, key := range view.sessionKeys(state.live) {
			if !view.exists(t, key) {
				t.Errorf("key %s of a live session on node %s was removed by Sweep", key, cluster.Addrs()[i])
			}
		}
	}
	view.wantEveryKeyHasTTL(t)
}

// The request path must cost one round trip on a cluster too: the client
// sends the script straight to the master of the user's slot, and no node
// replies with a MOVED or ASK redirect.
func TestClusterAccessIsOneRoundTrip(t *testing.T) {
	t.Parallel()
	cluster := testutil.StartCluster(t)
	const prefix = "trips:"
	p := testPolicy()
	p.MaxPerUser = 1
	st := newClusterStore(t, cluster, prefix, p)
	users := usersOnEveryNode(t, cluster, prefix)
	monitors := make([]*testutil.Monitor, len(users))
	for i, addr := range cluster.Addrs() {
		monitors[i] = testutil.StartMonitor(t, addr)
	}

	// A first session per user loads the slot map into the client and the
	// script into every master.
	now := time.Now()
	for _, user := range users {
		wantStatus(t, mustAccess(t, st, newTestToken(t, user, now).request(now, defaultClient)), sessions.StatusCreated, "")
	}

	marker := 0
	// wireCommands returns, for every node, the client commands it
	// received since the previous call, leaving out the marker ECHOs and
	// the client's background CLUSTER SLOTS reloads.
	seen := make([]int, len(users))
	wireCommands := func() [][]string {
		marker++
		text := fmt.Sprintf("round-trip-marker-%d", marker)
		out := make([][]string, len(users))
		for i, m := range monitors {
			if err := cluster.NodeClient(i).Echo(context.Background(), text).Err(); err != nil {
				t.Fatalf("ECHO on %s: %v", cluster.Addrs()[i], err)
			}
			m.WaitFor(t, text, 5*time.Second)
			lines := m.Lines()
			for _, line := range lines[seen[i]:] {
				lower := strings.ToLower(line)
				if strings.Contains(lower, `"echo"`) || strings.Contains(lower, `"cluster"`) {
					continue
				}
				out[i] = append(out[i], line)
			}
			seen[i] = len(lines)
		}
		return out
	}
	wireCommands()

	moved := defaultClient
	moved.IP = "203.0.113.77"
	for i, user := range users {
		tk := newTestToken(t, user, now)
		for _, step := range []struct {
			name   string
			client sessions.Client
			want   sessions.Status
		}{
			{name: "create with eviction", client: defaultClient, want: sessions.StatusCreated},
			{name: "refresh", client: defaultClient, want: sessions.StatusActive},
			{name: "refresh with IP change", client: moved, want: sessions.StatusActive},
		} {
			t.Run(user+"/"+step.name, func(t *testing.T) {
				wantStatus(t, mustAccess(t, st, tk.request(time.Now(), step.client)), step.want, "")
				for j, cmds := range wireCommands() {
					switch {
					case j == i && (len(cmds) != 1 || !strings.Contains(strings.ToLower(cmds[0]), `"evalsha"`)):
						t.Errorf("commands on owning node %s = %q, want one evalsha", cluster.Addrs()[j], cmds)
					case j != i && len(cmds) != 0:
						t.Errorf("commands on node %s = %q, want none: node %s owns the slot", cluster.Addrs()[j], cmds, cluster.Addrs()[i])
					}
				}
			})
		}
	}
}

// The binary must serve with REDIS_ADDRS naming the cluster's masters:
// requests reach the backend, each session key lands on the master that
// owns its slot, and `sessiongate cleanup` sweeps every master.
func TestClusterGateServesWithRedisAddrs(t *testing.T) {
	t.Parallel()
	cluster := testutil.StartCluster(t)
	backend := testutil.StartBackend(t)
	env := testutil.BaseEnv(backend.URL, "")
	delete(env, "REDIS_URL")
	env["REDIS_ADDRS"] = strings.Join(cluster.Addrs(), ",")
	// No background sweep, so that the cleanup below never finds the lock
	// taken.
	env["CLEANUP_INTERVAL"] = "0"
	gate := testutil.StartGate(t, env)

	const prefix = "sessiongate:" // the default REDIS_PREFIX
	layout := sessions.NewRedisStore(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), prefix, testPolicy())
	t.Cleanup(func() { layout.Close() })
	users := usersOnEveryNode(t, cluster, prefix)
	ctx := context.Background()
	tokens := make([]string, len(users))
	for i, user := range users {
		token := testutil.Token(t, user)
		tokens[i] = token
		for attempt := range 2 {
			backend.Reset()
			resp, body := testutil.Do(t, http.MethodGet, gate.URL+"/orders", token, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /orders as %s (request %d) = %d %s, want 200", user, attempt+1, resp.StatusCode, body)
			}
			if got := backend.Last(t).Header.Get("X-User-Id"); got != user {
				t.Errorf("backend X-User-Id = %q, want %q", got, user)
			}
		}

		key := layout.UserKeyBase(user) + "s:" + testutil.SessionIDOf(token)
		if owner := cluster.NodeOf(key); owner != i {
			t.Fatalf("NodeOf(%s) = %d, want %d", key, owner, i)
		}
		// A plain client on the owning master reads the key without a
		// MOVED redirect, so the key lives there.
		ttl, err := cluster.NodeClient(i).PTTL(ctx, key).Result()
		if err != nil {
			t.Fatalf("PTTL %s on %s: %v", key, cluster.Addrs()[i], err)
		}
		if ttl < 2*time.Hour-time.Minute || ttl > 2*time.Hour {
			t.Errorf("PTTL %s on %s = %v, want about the default 2h lifetime", key, cluster.Addrs()[i], ttl)
		}
	}

	// A session key without a TTL on every master, as an old version or a
	// crash could leave behind.
	var junk []string
	for i, user := range users {
		key := layout.UserKeyBase(user) + "s:" + newTestToken(t, user, time.Now()).sessionID
		if err := cluster.NodeClient(i).HSet(ctx, key, "u", user, "c", time.Now().UnixMilli()).Err(); err != nil {
			t.Fatalf("plant session without TTL on %s: %v", cluster.Addrs()[i], err)
		}
		junk = append(junk, key)
	}
	code, out := testutil.RunOnce(t, env, "cleanup")
	if code != 0 {
		t.Fatalf("sessiongate cleanup exited %d:\n%s", code, out)
	}
	for i, key := range junk {
		n, err := cluster.NodeClient(i).Exists(ctx, key).Result()
		if err != nil {
			t.Fatalf("EXISTS %s on %s: %v", key, cluster.Addrs()[i], err)
		}
		if n != 0 {
			t.Errorf("key %s without a TTL on %s survived sessiongate cleanup:\n%s", key, cluster.Addrs()[i], out)
		}
	}

	// The live sessions survive the sweep and still serve.
	for i, user := range users {
		resp, body := testutil.Do(t, http.MethodGet, gate.URL+"/orders", tokens[i], nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /orders as %s after cleanup = %d %s, want 200", user, resp.StatusCode, body)
		}
	}
}

// Readiness must turn false when any master is down, because that master's
// users can no longer be served.
func TestClusterPingFailsWhenAnyMasterIsDown(t *testing.T) {
	c := testutil.StartCluster(t)
	st := sessions.NewRedisStore(c.Client(), "pingtest:", sessions.Policy{Lifetime: time.Minute, CreateWindow: time.Minute})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := st.Ping(ctx); err != nil {
		t.Fatalf("Ping with every master up = %v, want nil", err)
	}

	c.KillNode(2)
	ctx, cancel = context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := st.Ping(ctx); err == nil {
		t.Error("Ping with master 2 down = nil, want an error")
	}
}
