package sessions_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/internal/testutil"
	"github.com/sessiongate/sessiongate/sessions"
)

// newRedisStore starts a redis-server for this test and returns a store on
// it with its redisView.
func newRedisStore(t *testing.T, p sessions.Policy) storeUnderTest {
	t.Helper()
	return setupRedis(t)(t, p)
}

// commandCounter is a go-redis hook that records the name of every command
// sent, one entry per round trip for pipelines.
type commandCounter struct {
	mu    sync.Mutex
	trips []string
}

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.mu.Lock()
		c.trips = append(c.trips, cmd.Name())
		c.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		names := make([]string, len(cmds))
		for i, cmd := range cmds {
			names[i] = cmd.Name()
		}
		c.mu.Lock()
		c.trips = append(c.trips, "pipeline("+strings.Join(names, " ")+")")
		c.mu.Unlock()
		return next(ctx, cmds)
	}
}

// take returns the round trips recorded since the last call.
func (c *commandCounter) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.trips
	c.trips = nil
	return out
}

// The request path must cost one Redis round trip for a live session and
// for a new one, once the script is cached.
func TestRedisAccessIsOneRoundTrip(t *testing.T) {
	srv := testutil.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), DisableIdentity: true})
	counter := &commandCounter{}
	client.AddHook(counter)
	p := testPolicy()
	p.MaxPerUser = 1
	st := sessions.NewRedisStore(client, "trips:", p)
	t.Cleanup(func() { st.Close() })

	now := time.Now()
	warm := newTestToken(t, "quinn", now)
	wantStatus(t, mustAccess(t, st, warm.request(now, defaultClient)), sessions.StatusCreated, "")
	counter.take()

	tk := newTestToken(t, "quinn", now)
	moved := defaultClient
	moved.IP = "203.0.113.77"
	for _, step := range []struct {
		name   string
		client sessions.Client
		want   sessions.Status
	}{
		{name: "create with eviction", client: defaultClient, want: sessions.StatusCreated},
		{name: "refresh", client: defaultClient, want: sessions.StatusActive},
		{name: "refresh with IP change", client: moved, want: sessions.StatusActive},
	} {
		t.Run(step.name, func(t *testing.T) {
			wantStatus(t, mustAccess(t, st, tk.request(time.Now(), step.client)), step.want, "")
			if trips := counter.take(); len(trips) != 1 || trips[0] != "evalsha" {
				t.Errorf("round trips of Access = %v, want one evalsha", trips)
			}
		})
	}
}

// No path may write a key without a TTL, or Redis would keep it forever.
func TestRedisKeysHaveTTLAfterMixedWorkload(t *testing.T) {
	p := testPolicy()
	p.MaxPerUser = 3
	p.AbsoluteLifetime = 2 * time.Second
	p.CreateWindow = time.Hour
	p.TouchInterval = 200 * time.Millisecond
	p.ActivityLogInterval = 300 * time.Millisecond
	st := newRedisStore(t, p)
	v := st.redis
	bindPolicy := p
	bindPolicy.BindIP = true
	bound := sessions.NewRedisStore(redis.NewClient(&redis.Options{Addr: v.client.(*redis.Client).Options().Addr, DisableIdentity: true}), v.store.Prefix(), bindPolicy)
	t.Cleanup(func() { bound.Close() })
	ctx := context.Background()

	// Bounded: 6 users, 5 tokens each, 4 rounds of requests 700ms apart, so
	// sessions pass their 2s absolute lifetime during the run.
	start := time.Now()
	var tokens []testToken
	for u := range 6 {
		for range 5 {
			tokens = append(tokens, newTestToken(t, fmt.Sprintf("mixed-%d", u), start))
		}
	}
	for round := range 4 {
		for i, tk := range tokens {
			client := defaultClient
			client.IP = fmt.Sprintf("192.0.2.%d", 1+(i+round)%3)
			store := sessions.Store(st.Store)
			if i%7 == 0 {
				store = bound
			}
			if _, err := store.Access(ctx, tk.request(time.Now(), client)); err != nil {
				t.Fatalf("Access round %d token %d: %v", round, i, err)
			}
		}
		switch round {
		case 1:
			if err := st.Revoke(ctx, tokens[1].userID, tokens[1].sessionID, time.Now()); err != nil && !errors.Is(err, sessions.ErrNotFound) {
				t.Fatalf("Revoke: %v", err)
			}
			if _, err := st.RevokeUser(ctx, "mixed-2", time.Now()); err != nil {
				t.Fatalf("RevokeUser: %v", err)
			}
		case 2:
			if _, err := st.Sweep(ctx, time.Now()); err != nil {
				t.Fatalf("Sweep: %v", err)
			}
		}
		time.Sleep(700 * time.Millisecond)
	}
	// Sessions created now outlive the check below.
	for u := range 2 {
		tk := newTestToken(t, fmt.Sprintf("mixed-%d", u), time.Now())
		wantStatus(t, mustAccess(t, st, tk.request(time.Now(), defaultClient)), sessions.StatusCreated, "")
	}
	if _, err := st.List(ctx, "mixed-0", time.Now()); err != nil {
		t.Fatalf("List: %v", err)
	}

	keys := v.keys(t)
	kinds := map[string]bool{}
	for _, key := range keys {
		rest := strings.TrimPrefix(key, v.store.Prefix())
		if _, after, ok := strings.Cut(rest, "}:"); ok {
			kind, _, _ := strings.Cut(after, ":")
			kinds[kind] = true
		}
		if ttl := v.pttl(t, key); ttl <= 0 {
			t.Errorf("PTTL(%s) = %v, want a TTL", key, ttl)
		}
	}
	// The workload must have written every kind of key, or the check above
	// proves less than it claims.
	for _, kind := range []string{"s", "m", "i", "r", "rb"} {
		if !kinds[kind] {
			t.Errorf("no %q key after the workload; keys: %v", kind, keys)
		}
	}
}

func TestRedisRevocationMarkerLivesAsLongAsToken(t *testing.T) {
	for _, row := range []struct {
		name     string
		leeway   time.Duration
		maxTTL   time.Duration
		tokenTTL time.Duration
		want     time.Duration
	}{
		{name: "token exp", tokenTTL: 10 * time.Minute, maxTTL: time.Hour, want: 10 * time.Minute},
		{name: "token exp plus leeway", leeway: 30 * time.Second, tokenTTL: 10 * time.Minute, maxTTL: time.Hour, want: 10*time.Minute + 30*time.Second},
		{name: "capped by MaxMarkerTTL", tokenTTL: 48 * time.Hour, maxTTL: time.Hour, want: time.Hour},
	} {
		t.Run(row.name, func(t *testing.T) {
			p := testPolicy()
			p.Leeway, p.MaxMarkerTTL = row.leeway, row.maxTTL
			st := newRedisStore(t, p)
			now := time.Now()
			tk := newTestToken(t, "rosa", now)
			tk.expiresAt = now.Add(row.tokenTTL)
			wantStatus(t, mustAccess(t, st, tk.request(now, defaultClient)), sessions.StatusCreated, "")
			if err := st.Revoke(context.Background(), tk.userID, tk.sessionID, now); err != nil {
				t.Fatalf("Revoke: %v", err)
			}

			marker := st.redis.key(tk.userID, "r:"+tk.sessionID)
			if ttl := st.redis.pttl(t, marker); ttl > row.want || ttl < row.want-5*time.Second {
				t.Errorf("PTTL(%s) = %v, want about %v", marker, ttl, row.want)
			}
			for _, key := range st.redis.keys(t) {
				if key != marker {
					t.Errorf("key %s remains after revoking the only session, want only the marker", key)
				}
			}
		})
	}
}

// plantOrphans writes n metadata keys without sessions, so that a sweep has
// n scripted deletions to do and runs long enough to be observed.
func plantOrphans(t *testing.T, v *redisView, n int) {
	t.Helper()
	ctx := context.Background()
	_, err := v.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range n {
			key := v.key(fmt.Sprintf("orphan-%d", i%50), fmt.Sprintf("m:orphan%06d", i))
			p.HSet(ctx, key, "l", "1")
			p.PExpire(ctx, key, time.Minute)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("plant %d orphan metadata keys: %v", n, err)
	}
}

// waitForLock polls the sweep lock until it holds owner, and fails the
// test if the sweep ends first.
func waitForLock(t *testing.T, v *redisView, owner string, done <-chan struct{}) {
	t.Helper()
	lock := v.store.Prefix() + "sweep:lock"
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if v.client.Get(context.Background(), lock).Val() == owner {
			return
		}
		select {
		case <-done:
			t.Fatalf("sweep finished before its lock was observed; plant more keys")
		case <-time.After(time.Millisecond):
		}
	}
	t.Fatalf("sweep lock %s never held %q", lock, owner)
}

func TestRedisSweepSkipsWhileAnotherProcessSweeps(t *testing.T) {
	const orphans = 3000
	st := newRedisStore(t, testPolicy())
	v := st.redis
	peer := v.peer(t, testPolicy())
	plantOrphans(t, v, orphans)
	ctx := context.Background()

	var first sessions.SweepReport
	var firstErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		first, firstErr = st.Sweep(ctx, time.Now())
	}()
	waitForLock(t, v, v.store.SweepLockOwner(), done)

	second, err := peer.Sweep(ctx, time.Now())
	if err != nil {
		t.Fatalf("second Sweep error: %v", err)
	}
	if !second.Skipped || second.RemovedTotal() != 0 {
		t.Errorf("second Sweep = skipped %v, removed %v, want skipped with nothing removed", second.Skipped, second.Removed)
	}
	<-done
	if firstErr != nil {
		t.Fatalf("first Sweep error: %v", firstErr)
	}
	if first.Skipped || first.Removed[sessions.RemovedOrphanMetadata] != orphans {
		t.Errorf("first Sweep = skipped %v, removed %v, want %d orphan metadata keys", first.Skipped, first.Removed, orphans)
	}
	if v.exists(t, v.store.Prefix()+"sweep:lock") {
		t.Errorf("sweep lock still exists after the sweep, want it released")
	}
}

// A sweep that outlived its lock must not delete the lock of the process
// that took over, or a third process could start a sweep beside it.
func TestRedisSweepReleasesOnlyItsOwnLock(t *testing.T) {
	st := newRedisStore(t, testPolicy())
	v := st.redis
	plantOrphans(t, v, 3000)
	ctx := context.Background()
	lock := v.store.Prefix() + "sweep:lock"

	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := st.Sweep(ctx, time.Now()); err != nil {
			t.Errorf("Sweep error: %v", err)
		}
	}()
	waitForLock(t, v, v.store.SweepLockOwner(), done)
	if err := v.client.Set(ctx, lock, "successor", time.Minute).Err(); err != nil {
		t.Fatalf("take over the sweep lock: %v", err)
	}
	<-done

	if got := v.client.Get(ctx, lock).Val(); got != "successor" {
		t.Errorf("sweep lock after the first sweep ended = %q, want the successor's lock kept", got)
	}
}

func TestRedisSweepHonoursForeignLock(t *testing.T) {
	st := newRedisStore(t, testPolicy())
	v := st.redis
	ctx := context.Background()
	lock := v.store.Prefix() + "sweep:lock"
	if err := v.client.Set(ctx, lock, "other-process", time.Minute).Err(); err != nil {
		t.Fatalf("set foreign sweep lock: %v", err)
	}

	report, err := st.Sweep(ctx, time.Now())
	if err != nil {
		t.Fatalf("Sweep error: %v", err)
	}
	if !report.Skipped {
		t.Errorf("Sweep under another process's lock: Skipped = false, want true")
	}
	if got := v.client.Get(ctx, lock).Val(); got != "other-process" {
		t.Errorf("sweep lock = %q, want the other process's lock untouched", got)
	}
	if _, ok, err := st.LastSweep(ctx); err != nil || ok {
		t.Errorf("LastSweep after a skipped sweep = ok %v, err %v, want no report", ok, err)
	}
}

func TestRedisSweepExpiresIndexWithoutTTL(t *testing.T) {
	p := testPolicy()
	st := newRedisStore(t, p)
	v := st.redis
	ctx := context.Background()
	now := time.Now()
	tk := newTestToken(t, "sam", now)
	wantStatus(t, mustAccess(t, st, tk.request(now, defaultClient)), sessions.StatusCreated, "")
	index := v.key(tk.userID, "i")
	if err := v.client.Persist(ctx, index).Err(); err != nil {
		t.Fatalf("PERSIST %s: %v", index, err)
	}

	report, err := st.Sweep(ctx, time.Now())
	if err != nil {
		t.Fatalf("Sweep error: %v", err)
	}
	if ttl := v.pttl(t, index); ttl <= 0 || ttl > p.Lifetime {
		t.Errorf("PTTL(%s) after Sweep = %v, want a TTL up to the session's %v", index, ttl, p.Lifetime)
	}
	if report.RemovedTotal() != 0 {
		t.Errorf("Sweep Removed = %v, want nothing: the index got a TTL and was kept", report.Removed)
	}
	wantStatus(t, mustAccess(t, st, tk.request(time.Now(), defaultClient)), sessions.StatusActive, "")
}

func TestRedisSweepReportCountsRemainingKeys(t *testing.T) {
	st := newRedisStore(t, testPolicy())
	v := st.redis
	ctx := context.Background()
	now := time.Now()
	for _, user := range []string{"tara", "tara", "uma"} {
		tk := newTestToken(t, user, now)
		wantStatus(t, mustAccess(t, st, tk.request(now, defaultClient)), sessions.StatusCreated, "")
	}
	v.plantBrokenKeys(t)

	for round := 1; round <= 2; round++ {
		report, err := st.Sweep(ctx, time.Now())
		if err != nil {
			t.Fatalf("Sweep %d error: %v", round, err)
		}
		var sessionKeys int
		for _, key := range v.keys(t) {
			if !strings.HasPrefix(key, v.store.Prefix()+"sweep:") {
				sessionKeys++
			}
		}
		if report.Remaining != sessionKeys {
			t.Errorf("Sweep %d Remaining = %d, want the %d session keys left under the prefix", round, report.Remaining, sessionKeys)
		}
	}
}

// Sweep must fail with the reason, not report an empty store, when Redis
// is gone.
func TestRedisStoreReportsUnreachableServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("reserve a port: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	st := sessions.NewRedisStore(redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true, MaxRetries: -1, DialTimeout: time.Second}), "gone:", testPolicy())
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()

	if err := st.Ping(ctx); err == nil {
		t.Errorf("Ping of a closed port = nil, want an error")
	}
	if _, err := st.Sweep(ctx, time.Now()); err == nil {
		t.Errorf("Sweep of a closed port = nil error, want an error")
	}
	tk := newTestToken(t, "vera", time.Now())
	if _, err := st.Access(ctx, tk.request(time.Now(), defaultClient)); err == nil {
		t.Errorf("Access of a closed port = nil error, want an error")
	}
}
