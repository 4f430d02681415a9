package sessions

import (
	"crypto/sha256"
	"sync"
	"time"
)

// tokenCache remembers verified tokens by digest so that an RSA or ECDSA
// signature is checked once per token rather than once per request. It is
// bounded: when full, an arbitrary entry (Go's map order) makes room, which
// costs no bookkeeping on the hit path. A Verifier owns one cache, so
// entries never outlive the key they were verified with.
type tokenCache struct {
	max    int
	shards [16]cacheShard
}

type cacheShard struct {
	mu      sync.RWMutex
	entries map[[sha256.Size]byte]cacheEntry
}

type cacheEntry struct {
	claims Claims
	until  time.Time
}

func newTokenCache(max int) *tokenCache {
	c := &tokenCache{max: max}
	for i := range c.shards {
		c.shards[i].entries = map[[sha256.Size]byte]cacheEntry{}
	}
	return c
}

func (c *tokenCache) shard(digest [sha256.Size]byte) *cacheShard {
	return &c.shards[digest[0]&15]
}

func (c *tokenCache) get(digest [sha256.Size]byte, now time.Time) (Claims, bool) {
	sh := c.shard(digest)
	sh.mu.RLock()
	e, ok := sh.entries[digest]
	sh.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		return Claims{}, false
	}
	return e.claims, true
}

func (c *tokenCache) put(digest [sha256.Size]byte, claims Claims, until time.Time) {
	sh := c.shard(digest)
	perShard := max(1, c.max/len(c.shards))
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(sh.entries) >= perShard {
		now := time.Now()
		evicted := 0
		for k, e := range sh.entries {
			// Drop expired entries first; when none are, drop one at random.
			if !now.Before(e.until) || evicted == 0 {
				delete(sh.entries, k)
				evicted++
			}
			if evicted >= 8 {
				break
			}
		}
	}
	sh.entries[digest] = cacheEntry{claims: claims, until: until}
}
