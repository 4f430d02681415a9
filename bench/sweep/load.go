package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// prefix is the default REDIS_PREFIX, below which the sweep matches keys.
const prefix = "sessiongate:"

// lifetime is the TTL given to every loaded session, the default
// SESSION_LIFETIME. The run ends long before any key expires.
const lifetime = 2 * time.Hour

// loadBatch is the number of sessions that one pipeline writes, with six
// commands per session.
const loadBatch = 1000

// loadWorkers is the number of pipelines in flight at once.
const loadWorkers = 4

// userAgent is a typical browser User-Agent, so that metadata hashes have
// a realistic size.
const userAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"

func userBase(user int) string {
	return prefix + "{user" + strconv.Itoa(user) + "}:"
}

// sessionID returns a 22-character id, the length of a real one.
func sessionID(i int) string {
	return fmt.Sprintf("%022d", i)
}

// loadSessions writes n sessions, perUser per user, in the layout that the
// access script writes. Each has a session hash and a metadata hash with
// the idle TTL, and an entry in the user's index scored by idle expiry.
func loadSessions(ctx context.Context, c *redis.Client, n, perUser int) error {
	batches := make(chan int)
	errs := make(chan error, loadWorkers)
	var wg sync.WaitGroup
	for range loadWorkers {
		wg.Go(func() {
			for start := range batches {
				if err := loadBatchAt(ctx, c, start, min(start+loadBatch, n), perUser); err != nil {
					errs <- err
					return
				}
			}
		})
	}

	var err error
feed:
	for start := 0; start < n; start += loadBatch {
		select {
		case batches <- start:
		case err = <-errs:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(batches)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	if err != nil {
		return fmt.Errorf("load sessions: %w", err)
	}
	return nil
}

func loadBatchAt(ctx context.Context, c *redis.Client, start, end, perUser int) error {
	now := time.Now()
	nowMS := now.UnixMilli()
	expiresMS := now.Add(lifetime).UnixMilli()
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := start; i < end; i++ {
			user := i / perUser
			base, id := userBase(user), sessionID(i)
			p.HSet(ctx, base+"s:"+id, "u", "user"+strconv.Itoa(user), "e", "user"+strconv.Itoa(user)+"@example.test",
				"c", nowMS, "x", expiresMS, "a", 0)
			p.PExpire(ctx, base+"s:"+id, lifetime)
			p.HSet(ctx, base+"m:"+id, "l", nowMS, "ip", "203.0.113."+strconv.Itoa(i%250), "ua", userAgent,
				"mt", "GET", "p", "/api/orders/"+strconv.Itoa(i), "g", nowMS)
			p.PExpire(ctx, base+"m:"+id, lifetime)
			p.ZAdd(ctx, base+"i", redis.Z{Score: float64(expiresMS), Member: id})
			p.PExpire(ctx, base+"i", lifetime)
		}
		return nil
	})
	return err
}

// plantJunk writes n of each kind of junk that the sweep removes. These are
// session keys without a TTL (of users without an index), metadata keys of
// missing sessions, and index entries of missing sessions. The last two
// kinds go to users that exist.
func plantJunk(ctx context.Context, c *redis.Client, n, users int) error {
	now := time.Now()
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for j := range n {
			ghost := "ghost" + fmt.Sprintf("%017d", j)
			p.HSet(ctx, prefix+"{junk"+strconv.Itoa(j)+"}:s:"+sessionID(j), "u", "junk"+strconv.Itoa(j), "c", now.UnixMilli())
			base := userBase(j * users / max(n, 1))
			p.HSet(ctx, base+"m:"+ghost, "l", now.UnixMilli(), "ip", "198.51.100.1")
			p.PExpire(ctx, base+"m:"+ghost, lifetime)
			p.ZAdd(ctx, base+"i", redis.Z{Score: float64(now.Add(lifetime).UnixMilli()), Member: "stale" + fmt.Sprintf("%017d", j)})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("plant junk: %w", err)
	}
	return nil
}
