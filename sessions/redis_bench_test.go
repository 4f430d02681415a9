package sessions_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/internal/testutil"
	"github.com/sessiongate/sessiongate/sessions"
)

// benchPolicy is the default policy of a deployment: two hours idle, no
// absolute limit, activity written every 15 seconds.
func benchPolicy() sessions.Policy {
	return sessions.Policy{
		Lifetime:            2 * time.Hour,
		CreateWindow:        2 * time.Hour,
		Leeway:              30 * time.Second,
		TouchInterval:       15 * time.Second,
		ActivityLogInterval: 5 * time.Minute,
		MaxMarkerTTL:        sessions.DefaultMaxMarkerTTL,
	}
}

// benchRequests returns n access requests of distinct users and sessions
// from one browser, as the gateway builds them.
func benchRequests(n int) []sessions.AccessRequest {
	now := time.Now()
	out := make([]sessions.AccessRequest, n)
	for i := range out {
		digest := sha256.Sum256([]byte(fmt.Sprintf("bench-token-%d", i)))
		out[i] = sessions.AccessRequest{
			SessionID: sessions.SessionID(digest),
			UserID:    fmt.Sprintf("user-%d", i),
			Email:     fmt.Sprintf("user-%d@example.test", i),
			IssuedAt:  now.Add(-time.Minute),
			ExpiresAt: now.Add(time.Hour),
			Client: sessions.Client{
				IP:        "203.0.113.7",
				UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
				Method:    "GET",
				Path:      "/api/items",
			},
		}
	}
	return out
}

// BenchmarkRedisAccess measures Store.Access on live sessions against a
// real redis-server: one EVALSHA round trip per operation. It skips when
// redis-server is not installed.
func BenchmarkRedisAccess(b *testing.B) {
	srv := testutil.StartRedis(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), DisableIdentity: true, PoolSize: 64})
	st := sessions.NewRedisStore(client, "bench:", benchPolicy())
	b.Cleanup(func() { st.Close() })

	reqs := benchRequests(benchTokenCount)
	ctx := context.Background()
	for i := range reqs {
		reqs[i].Now = time.Now()
		res, err := st.Access(ctx, reqs[i])
		if err != nil || res.Status != sessions.StatusCreated {
			b.Fatalf("create session %d: status %v, err %v", i, res.Status, err)
		}
	}

	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		before := scriptMicros(b, client)
		for i := 0; b.Loop(); i++ {
			req := reqs[i%len(reqs)]
			req.Now = time.Now()
			if res, err := st.Access(ctx, req); err != nil || res.Status != sessions.StatusActive {
				b.Fatalf("Access: status %v, err %v", res.Status, err)
			}
		}
		b.ReportMetric((scriptMicros(b, client)-before)/float64(b.N), "redis-µs/op")
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				req := reqs[i%len(reqs)]
				i += 7
				req.Now = time.Now()
				if res, err := st.Access(ctx, req); err != nil || res.Status != sessions.StatusActive {
					b.Errorf("Access: status %v, err %v", res.Status, err)
					return
				}
			}
		})
	})
}

// scriptMicros returns the microseconds Redis has spent in EVALSHA, from
// INFO commandstats, so that a benchmark can report Redis's own share.
func scriptMicros(b *testing.B, client *redis.Client) float64 {
	b.Helper()
	raw, err := client.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatalf("INFO commandstats: %v", err)
	}
	for _, line := range strings.Split(raw, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_evalsha:")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "usec="); ok {
				us, _ := strconv.ParseFloat(v, 64)
				return us
			}
		}
	}
	return 0
}
