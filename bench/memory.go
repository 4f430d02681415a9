package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"
)

// memoryResult is the memory of one sessiongate instance holding many
// live sessions.
type memoryResult struct {
	target   string
	sessions int
	failed   int
	// rssIdle is sessiongate's resident size after the sessions were
	// created; rssMax the largest seen during the load run after it.
	rssIdle int64
	rssMax  int64
	// redisBytes is the growth of Redis used_memory; 0 for the memory store.
	redisBytes int64
	redisKeys  int64
	loadRate   float64
}

// keySize is the average MEMORY USAGE of one kind of session key.
type keySize struct {
	kind    string
	sampled int
	bytes   float64
}

// runMemory creates cfg.sessions live sessions in each sessiongate with
// HS256 tokens (Redis store, then memory store) and measures Redis's
// used_memory growth and sessiongate's resident size under load.
func (b *bench) runMemory(ctx context.Context, res *results) error {
	if b.cfg.sessions <= 0 {
		return nil
	}
	file := filepath.Join(b.dir, "tokens-many.txt")
	fmt.Fprintf(os.Stderr, "generating %d tokens for the memory measurement\n", b.cfg.sessions)
	if err := writeTokens(file, b.cfg.sessions, "many", jwt.SigningMethodHS256, []byte(b.keys.secret)); err != nil {
		return err
	}
	tokens, err := readTokens(file)
	if err != nil {
		return err
	}

	for _, name := range []string{"sg-redis-hs256", "sg-memory"} {
		t := b.find(name)
		if t == nil || !b.wanted(name) {
			continue
		}
		m, err := b.measureMemory(ctx, t, file, tokens)
		if err != nil {
			return err
		}
		res.memory = append(res.memory, m)
		if t.usesRedis {
			sizes, err := b.sampleKeySizes(ctx)
			if err != nil {
				return err
			}
			res.keySizes = sizes
		}
	}
	return nil
}

func (b *bench) measureMemory(ctx context.Context, t *target, file string, tokens []string) (memoryResult, error) {
	m := memoryResult{target: t.name}
	var rc *redis.Client
	var usedBefore int64
	if t.usesRedis {
		rc = redis.NewClient(&redis.Options{Addr: b.redisAddr, DB: sessiongateDB, DisableIdentity: true})
		defer rc.Close()
		// Start from an empty session database so that the growth of
		// used_memory is the new sessions alone.
		if err := rc.FlushDB(ctx).Err(); err != nil {
			return m, fmt.Errorf("flush the session database: %w", err)
		}
		var err error
		if usedBefore, err = infoField(ctx, rc, "memory", "used_memory"); err != nil {
			return m, err
		}
	}

	fmt.Fprintf(os.Stderr, "creating %d sessions through %s\n", len(tokens), t.name)
	ok, failed, err := createSessions(ctx, t.url+"/api/items", tokens, b.cfg.connections, 5*time.Minute)
	if err != nil {
		return m, err
	}
	m.sessions, m.failed = ok, failed
	if t.usesRedis {
		usedAfter, err := infoField(ctx, rc, "memory", "used_memory")
		if err != nil {
			return m, err
		}
		m.redisBytes = usedAfter - usedBefore
		if m.redisKeys, err = rc.DBSize(ctx).Result(); err != nil {
			return m, fmt.Errorf("count session keys: %w", err)
		}
	}
	if m.rssIdle, err = rssOf(t.pids[0]); err != nil {
		return m, err
	}

	// Sample the resident size while wrk rotates over every session.
	stop := make(chan struct{})
	var peak atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, err := rssOf(t.pids[0]); err == nil && rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	fmt.Fprintf(os.Stderr, "loading %s over %d sessions for %s\n", t.name, len(tokens), b.cfg.duration)
	w, err := runWrk(ctx, b.script, t.url, file, b.cfg.threads, b.cfg.connections, b.cfg.duration)
	close(stop)
	wg.Wait()
	if err != nil {
		return m, err
	}
	if w.errors() > 0 {
		b.note("the load run over %d sessions of %s had %d errors", len(tokens), t.name, w.errors())
	}
	m.rssMax, m.loadRate = peak.Load(), w.rate()
	return m, nil
}

// createSessions sends each token once over workers connections and
// returns how many requests succeeded and failed. It stops at limit.
func createSessions(ctx context.Context, url string, tokens []string, workers int, limit time.Duration) (ok, failed int, err error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConnsPerHost: workers,
		MaxConnsPerHost:     workers,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 5 * time.Second}

	var next, okCount, failCount atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(tokens) {
					return
				}
				if sendOne(ctx, client, url, tokens[i]) {
					okCount.Add(1)
				} else {
					failCount.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return int(okCount.Load()), int(failCount.Load()), fmt.Errorf("creating sessions stopped after %s: %w", limit, ctx.Err())
	}
	return int(okCount.Load()), int(failCount.Load()), nil
}

// sampleKeySizes returns the average MEMORY USAGE of up to 200 keys of
// each kind in the session database.
func (b *bench) sampleKeySizes(ctx context.Context) ([]keySize, error) {
	rc := redis.NewClient(&redis.Options{Addr: b.redisAddr, DB: sessiongateDB, DisableIdentity: true})
	defer rc.Close()
	var out []keySize
	for _, kind := range []struct{ name, pattern string }{
		{"session hash (s:ID)", "*}:s:*"},
		{"metadata hash (m:ID)", "*}:m:*"},
		{"user index zset (i)", "*}:i"},
	} {
		ks := keySize{kind: kind.name}
		var total int64
		iter := rc.Scan(ctx, 0, kind.pattern, 1000).Iterator()
		for iter.Next(ctx) && ks.sampled < 200 {
			n, err := rc.MemoryUsage(ctx, iter.Val(), 0).Result()
			if err != nil {
				return nil, fmt.Errorf("MEMORY USAGE %s: %w", iter.Val(), err)
			}
			total += n
			ks.sampled++
		}
		if err := iter.Err(); err != nil {
			return nil, fmt.Errorf("scan %s keys: %w", kind.pattern, err)
		}
		if ks.sampled > 0 {
			ks.bytes = float64(total) / float64(ks.sampled)
		}
		out = append(out, ks)
	}
	return out, nil
}
