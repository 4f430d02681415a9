package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore keeps sessions in Redis: a single node, Sentinel or Cluster,
// behind redis.UniversalClient. Access sends one EVALSHA (plus an EVAL when
// Redis lacks the script); the EVALSHAs of concurrent requests share round
// trips through accessPipeline.
type RedisStore struct {
	client redis.UniversalClient
	prefix string
	policy Policy
	owner  string // sweep lock owner, unique per process
	// accessArgs is the ARGV of accessScript with the policy filled in
	// once, so that Access does not box ten constants on every request.
	accessArgs [21]any
	// pipeline batches the Access scripts of concurrent requests.
	pipeline *accessPipeline
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store on client that writes keys under prefix.
// The store owns client and closes it in Close.
func NewRedisStore(client redis.UniversalClient, prefix string, policy Policy) *RedisStore {
	s := &RedisStore{client: client, prefix: prefix, policy: policy, owner: newOwnerID(), pipeline: newAccessPipeline(client)}
	p := policy
	// Indexes are ARGV positions less one; accessScript documents them.
	s.accessArgs[1] = durMS(p.Lifetime)
	s.accessArgs[2] = durMS(p.AbsoluteLifetime)
	s.accessArgs[3] = durMS(p.CreateWindow)
	s.accessArgs[4] = durMS(p.Leeway)
	s.accessArgs[13] = durMS(p.TouchInterval)
	s.accessArgs[14] = durMS(p.ActivityLogInterval)
	s.accessArgs[15] = boolArg(p.BindIP)
	s.accessArgs[16] = boolArg(p.BindUserAgent)
	s.accessArgs[17] = p.MaxPerUser
	// With no exp given, markerTTL returns the cap, which does not depend
	// on the time.
	s.accessArgs[18] = durMS(p.markerTTL(time.Time{}, time.Time{}))
	return s
}

func (s *RedisStore) userBase(userID string) string {
	return s.prefix + "{" + userTag(userID) + "}:"
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func durMS(d time.Duration) int64 { return d.Milliseconds() }

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Access implements Store.
func (s *RedisStore) Access(ctx context.Context, req AccessRequest) (AccessResult, error) {
	base := s.userBase(req.UserID)
	keys := []string{base + "s:" + req.SessionID, base + "m:" + req.SessionID, base + "i", base + "r:" + req.SessionID, base + "rb"}
	args := s.accessArgs
	args[0] = ms(req.Now)
	args[5] = ms(req.IssuedAt.Truncate(time.Second))
	args[6] = ms(req.ExpiresAt)
	args[7], args[8] = req.UserID, req.Email
	args[9], args[10], args[11], args[12] = req.Client.IP, req.Client.UserAgent, req.Client.Method, req.Client.Path
	args[19], args[20] = base, req.SessionID
	reply, err := s.pipeline.do(ctx, keys, args[:])
	if err != nil {
		return AccessResult{}, fmt.Errorf("access session %s: %w", req.SessionID, err)
	}
	return decodeAccess(req, reply)
}

func decodeAccess(req AccessRequest, reply []any) (AccessResult, error) {
	field := func(i int) string {
		if i >= len(reply) {
			return ""
		}
		switch v := reply[i].(type) {
		case string:
			return v
		case int64:
			return strconv.FormatInt(v, 10)
		}
		return ""
	}
	num := func(i int) int64 {
		n, _ := strconv.ParseInt(field(i), 10, 64)
		return n
	}

	res := AccessResult{Status: Status(num(0)), Reason: field(1)}
	if res.Status < StatusActive || res.Status > StatusRevoked {
		return AccessResult{}, fmt.Errorf("access session %s: unexpected script reply %v", req.SessionID, reply)
	}
	res.PreviousIP, res.PreviousUserAgent = field(4), field(5)
	if res.Status != StatusActive && res.Status != StatusCreated {
		return res, nil
	}
	res.LogActivity = num(6) == 1
	res.Session = Session{
		ID:           req.SessionID,
		UserID:       req.UserID,
		Email:        field(11),
		CreatedAt:    fromMS(num(2)),
		LastActivity: fromMS(num(3)),
		ExpiresAt:    fromMS(num(12)),
		IP:           field(7),
		UserAgent:    field(8),
		Method:       field(9),
		Path:         field(10),
	}
	for i := 13; i < len(reply); i++ {
		res.Evicted = append(res.Evicted, field(i))
	}
	return res, nil
}

// Revoke implements Store.
func (s *RedisStore) Revoke(ctx context.Context, userID, sessionID string, now time.Time) error {
	base := s.userBase(userID)
	n, err := revokeScript.Run(ctx, s.client, []string{base + "s:" + sessionID},
		ms(now), durMS(s.policy.Leeway), durMS(s.policy.markerTTL(now, time.Time{})), base, sessionID,
	).Int()
	if err != nil {
		return fmt.Errorf("revoke session %s: %w", sessionID, err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// RevokeUser implements Store.
func (s *RedisStore) RevokeUser(ctx context.Context, userID string, now time.Time) (int, error) {
	base := s.userBase(userID)
	n, err := revokeUserScript.Run(ctx, s.client, []string{base + "i", base + "rb"},
		ms(now), durMS(s.policy.Leeway), durMS(s.policy.markerTTL(now, time.Time{})), base,
		durMS(s.policy.revokedBeforeTTL()),
	).Int()
	if err != nil {
		return 0, fmt.Errorf("revoke sessions of user %s: %w", userID, err)
	}
	return n, nil
}

// List implements Store.
func (s *RedisStore) List(ctx context.Context, userID string, now time.Time) ([]Session, error) {
	base := s.userBase(userID)
	ids, err := s.client.ZRangeByScore(ctx, base+"i", &redis.ZRangeBy{Min: "(" + strconv.FormatInt(ms(now), 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("list sessions of user %s: %w", userID, err)
	}
	out := []Session{}
	if len(ids) == 0 {
		return out, nil
	}

	type pair struct{ sess, meta *redis.SliceCmd }
	cmds := make([]pair, len(ids))
	pttls := make([]*redis.DurationCmd, len(ids))
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i].sess = p.HMGet(ctx, base+"s:"+id, "u", "e", "c")
			cmds[i].meta = p.HMGet(ctx, base+"m:"+id, "l", "ip", "ua", "mt", "p")
			pttls[i] = p.PTTL(ctx, base+"s:"+id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list sessions of user %s: %w", userID, err)
	}

	for i, id := range ids {
		sv, mv := cmds[i].sess.Val(), cmds[i].meta.Val()
		if len(sv) < 3 || sv[2] == nil {
			continue // expired or revoked between the two calls
		}
		str := func(v any) string { s, _ := v.(string); return s }
		num := func(v any) int64 { n, _ := strconv.ParseInt(str(v), 10, 64); return n }
		sess := Session{
			ID:        id,
			UserID:    str(sv[0]),
			Email:     str(sv[1]),
			CreatedAt: fromMS(num(sv[2])),
		}
		if ttl := pttls[i].Val(); ttl > 0 {
			sess.ExpiresAt = now.Add(ttl).UTC().Truncate(time.Millisecond)
		}
		if len(mv) == 5 {
			sess.LastActivity = fromMS(num(mv[0]))
			sess.IP, sess.UserAgent, sess.Method, sess.Path = str(mv[1]), str(mv[2]), str(mv[3]), str(mv[4])
		}
		out = append(out, sess)
	}
	sortByActivity(out)
	return out, nil
}

// LastSweep implements Store.
func (s *RedisStore) LastSweep(ctx context.Context) (SweepReport, bool, error) {
	raw, err := s.client.Get(ctx, s.prefix+"sweep:last").Bytes()
	if errors.Is(err, redis.Nil) {
		return SweepReport{}, false, nil
	}
	if err != nil {
		return SweepReport{}, false, fmt.Errorf("read last sweep report: %w", err)
	}
	var r SweepReport
	if err := json.Unmarshal(raw, &r); err != nil {
		return SweepReport{}, false, fmt.Errorf("decode last sweep report: %w", err)
	}
	return r, true, nil
}

// Ping implements Store.
// On a Cluster it pings every master, because each one serves a share of
// the users and one down master fails their requests.
func (s *RedisStore) Ping(ctx context.Context) error {
	if cluster, ok := s.client.(*redis.ClusterClient); ok {
		err := cluster.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			if err := node.Ping(ctx).Err(); err != nil {
				return fmt.Errorf("ping redis master %s: %w", node.Options().Addr, err)
			}
			return nil
		})
		return err
	}
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping redis: %w", err)
	}
	return nil
}

// Close implements Store.
func (s *RedisStore) Close() error {
	s.pipeline.close()
	return s.client.Close()
}
