package sessions

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// sweepBatch is the SCAN COUNT hint and pipeline size of a sweep: large
// enough to keep round trips few, small enough that no single command holds
// Redis for long.
const sweepBatch = 1000

// sweepLockTTL bounds how long a crashed sweeper can block the others.
const sweepLockTTL = 10 * time.Minute

// sweepReportTTL keeps the last report readable by /admin/stats.
const sweepReportTTL = 30 * 24 * time.Hour

var (
	// releaseLockScript deletes the lock only when this process owns it.
	releaseLockScript = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`
	// deleteIfNoTTLScript deletes a key that has no TTL, and no other.
	deleteIfNoTTLScript = `if redis.call('PTTL', KEYS[1]) == -1 then return redis.call('DEL', KEYS[1]) end return 0`
	// deleteIfOrphanScript deletes metadata KEYS[1] when session KEYS[2] is gone.
	deleteIfOrphanScript = `if redis.call('EXISTS', KEYS[2]) == 0 then return redis.call('DEL', KEYS[1]) end return 0`
	// removeIfGoneScript removes index entry ARGV[1] of KEYS[1] when its
	// session KEYS[2] is gone. It returns 0 when it kept the entry, 1 when
	// it removed it, and 2 when that was the last entry, so that Redis
	// deleted the index too.
	removeIfGoneScript = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 2 end
return 1`
	// expireIndexScript gives an index without a TTL one that ends with its
	// last entry, or deletes it when every entry is past. It returns 1 when
	// it set a TTL and 2 when it deleted the index.
	expireIndexScript = `
if redis.call('PTTL', KEYS[1]) ~= -1 then return 0 end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local ttl = 0
if last[2] then ttl = tonumber(last[2]) - tonumber(ARGV[1]) end
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  return 1
end
redis.call('DEL', KEYS[1])
return 2`
)

func newOwnerID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// globEscape escapes the characters SCAN MATCH treats as patterns.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Sweep implements Store. It SCANs every master in batches of sweepBatch
// keys, so no single command holds Redis for long. It checks each candidate
// again inside a script before deleting it, so a session written meanwhile
// survives.
func (s *RedisStore) Sweep(ctx context.Context, now time.Time) (SweepReport, error) {
	report := SweepReport{StartedAt: now.UTC(), Removed: map[string]int{}}
	lockKey := s.prefix + "sweep:lock"
	got, err := s.client.SetNX(ctx, lockKey, s.owner, sweepLockTTL).Result()
	if err != nil {
		return report, fmt.Errorf("take sweep lock: %w", err)
	}
	if !got {
		report.Skipped = true
		return report, nil
	}
	defer func() {
		// A fresh context, so that a cancelled sweep still frees the lock.
		releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		s.client.Eval(releaseCtx, releaseLockScript, []string{lockKey}, s.owner)
	}()

	start := time.Now()
	if cluster, ok := s.client.(*redis.ClusterClient); ok {
		// ForEachMaster calls fn on every master at once, so each master
		// counts into a report of its own that is added to the total under mu.
		var mu sync.Mutex
		err = cluster.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			part := SweepReport{Removed: map[string]int{}}
			err := s.sweepNode(ctx, node, now, &part)
			mu.Lock()
			report.add(part)
			mu.Unlock()
			return err
		})
	} else {
		err = s.sweepNode(ctx, s.client, now, &report)
	}
	report.Duration = time.Since(start)
	if err != nil {
		return report, err
	}

	report.Remaining = report.Found - report.RemovedKeys()
	if raw, err := json.Marshal(report); err == nil {
		if err := s.client.Set(ctx, s.prefix+"sweep:last", raw, sweepReportTTL).Err(); err != nil {
			return report, fmt.Errorf("store sweep report: %w", err)
		}
	}
	return report, nil
}

// RemovedKeys counts removals that deleted a whole key: keys without a TTL,
// orphan metadata, and indexes whose last stale entry was removed. Stale
// entries themselves are members, not keys.
func (r SweepReport) RemovedKeys() int {
	return r.Removed[RemovedNoTTL] + r.Removed[RemovedOrphanMetadata] + r.emptiedIndexes
}

// add adds the counts of part, the report of one cluster master, to r.
func (r *SweepReport) add(part SweepReport) {
	r.Found += part.Found
	r.Sessions += part.Sessions
	r.Users += part.Users
	r.emptiedIndexes += part.emptiedIndexes
	for kind, n := range part.Removed {
		r.Removed[kind] += n
	}
}

// sweptKey is one key of a SCAN batch, split into its parts.
type sweptKey struct {
	key  string
	base string // prefix{tag}:
	kind string // s, m, i, r, rb
	id   string // session id for s, m and r
}

func (s *RedisStore) parseKey(key string) (sweptKey, bool) {
	rest, ok := strings.CutPrefix(key, s.prefix)
	if !ok || !strings.HasPrefix(rest, "{") {
		return sweptKey{}, false
	}
	end := strings.Index(rest, "}:")
	if end < 0 {
		return sweptKey{}, false
	}
	k := sweptKey{key: key, base: s.prefix + rest[:end+2]}
	kind, id, _ := strings.Cut(rest[end+2:], ":")
	k.kind, k.id = kind, id
	switch {
	case (kind == "s" || kind == "m" || kind == "r") && id != "":
		return k, true
	case (kind == "i" || kind == "rb") && id == "":
		return k, true
	}
	return sweptKey{}, false
}

func (s *RedisStore) sweepNode(ctx context.Context, node redis.UniversalClient, now time.Time, report *SweepReport) error {
	match := globEscape(s.prefix) + "*"
	var cursor uint64
	for {
		keys, next, err := node.Scan(ctx, cursor, match, sweepBatch).Result()
		if err != nil {
			return fmt.Errorf("scan keys %s: %w", match, err)
		}
		if err := s.sweepBatch(ctx, node, keys, now, report); err != nil {
			return err
		}
		cursor = next
		if cursor == 0 {
			return nil
		}
	}
}

func (s *RedisStore) sweepBatch(ctx context.Context, node redis.UniversalClient, keys []string, now time.Time, report *SweepReport) error {
	// Only session keys count: the sweep's own lock and report are under
	// the prefix too, but the lock is gone and the report rewritten by the
	// time Remaining is read.
	parsed := make([]sweptKey, 0, len(keys))
	for _, key := range keys {
		if k, ok := s.parseKey(key); ok {
			report.Found++
			parsed = append(parsed, k)
		}
	}
	if len(parsed) == 0 {
		return nil
	}

	// Fetch TTLs, session existence for metadata, and index contents in
	// one pipeline.
	ttls := make([]*redis.DurationCmd, len(parsed))
	exists := make([]*redis.IntCmd, len(parsed))
	members := make([]*redis.ZSliceCmd, len(parsed))
	_, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range parsed {
			ttls[i] = p.PTTL(ctx, k.key)
			switch k.kind {
			case "m":
				exists[i] = p.Exists(ctx, k.base+"s:"+k.id)
			case "i":
				members[i] = p.ZRangeWithScores(ctx, k.key, 0, -1)
			}
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return fmt.Errorf("inspect %d keys: %w", len(parsed), err)
	}

	// Decide, then delete each candidate with a script that checks the
	// condition again.
	for i, k := range parsed {
		noTTL := ttls[i].Val() == -1 // go-redis keeps -1 (no TTL) and -2 (gone) unscaled
		switch k.kind {
		case "s":
			if noTTL {
				if err := s.removeIf(ctx, node, deleteIfNoTTLScript, []string{k.key}, RemovedNoTTL, report); err != nil {
					return err
				}
				continue
			}
			report.Sessions++
		case "m":
			if noTTL {
				if err := s.removeIf(ctx, node, deleteIfNoTTLScript, []string{k.key}, RemovedNoTTL, report); err != nil {
					return err
				}
				continue
			}
			if exists[i].Val() == 0 {
				if err := s.removeIf(ctx, node, deleteIfOrphanScript, []string{k.key, k.base + "s:" + k.id}, RemovedOrphanMetadata, report); err != nil {
					return err
				}
			}
		case "r", "rb":
			if noTTL {
				if err := s.removeIf(ctx, node, deleteIfNoTTLScript, []string{k.key}, RemovedNoTTL, report); err != nil {
					return err
				}
			}
		case "i":
			report.Users++
			if err := s.sweepIndex(ctx, node, now, k, members[i].Val(), noTTL, report); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *RedisStore) sweepIndex(ctx context.Context, node redis.UniversalClient, now time.Time, k sweptKey, entries []redis.Z, noTTL bool, report *SweepReport) error {
	if len(entries) == 0 {
		return nil
	}
	checks := make([]*redis.IntCmd, len(entries))
	_, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
		for j, z := range entries {
			checks[j] = p.Exists(ctx, k.base+"s:"+fmt.Sprint(z.Member))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check index %s: %w", k.key, err)
	}
	for j, z := range entries {
		if checks[j].Val() != 0 {
			continue
		}
		member := fmt.Sprint(z.Member)
		n, err := node.Eval(ctx, removeIfGoneScript, []string{k.key, k.base + "s:" + member}, member).Int()
		if err != nil {
			return fmt.Errorf("remove stale entry %s of %s: %w", member, k.key, err)
		}
		if n > 0 {
			report.Removed[RemovedStaleIndexEntry]++
		}
		if n == 2 {
			report.emptiedIndexes++
			return nil
		}
	}
	if noTTL {
		// Setting a TTL removes nothing, so only a deletion is counted.
		n, err := node.Eval(ctx, expireIndexScript, []string{k.key}, strconv.FormatInt(ms(now), 10)).Int()
		if err != nil {
			return fmt.Errorf("expire index %s: %w", k.key, err)
		}
		if n == 2 {
			report.Removed[RemovedNoTTL]++
		}
	}
	return nil
}

func (s *RedisStore) removeIf(ctx context.Context, node redis.UniversalClient, script string, keys []string, kind string, report *SweepReport) error {
	n, err := node.Eval(ctx, script, keys).Int()
	if err != nil {
		return fmt.Errorf("remove %s: %w", keys[0], err)
	}
	if n > 0 {
		report.Removed[kind]++
	}
	return nil
}
