package sessions

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// MemoryStore keeps sessions in this process. It applies the same policy as
// RedisStore, with expiry judged against the times passed in, but sessions
// are lost on restart and not shared between replicas.
type MemoryStore struct {
	policy Policy

	mu        sync.Mutex
	users     map[string]*memoryUser
	lastSweep *SweepReport
}

var _ Store = (*MemoryStore)(nil)

type memoryUser struct {
	sessions map[string]*memorySession
	// markers maps a revoked session id to when its marker ends.
	markers map[string]time.Time
	// revokedBefore rejects tokens issued earlier until revokedUntil.
	revokedBefore time.Time
	revokedUntil  time.Time
}

type memorySession struct {
	Session
	tokenExpiry time.Time
	deadline    time.Time // absolute lifetime end; zero for none
	loggedAt    time.Time
}

// NewMemoryStore returns an empty in-process store.
func NewMemoryStore(policy Policy) *MemoryStore {
	return &MemoryStore{policy: policy, users: map[string]*memoryUser{}}
}

func (s *MemoryStore) user(userID string) *memoryUser {
	u := s.users[userID]
	if u == nil {
		u = &memoryUser{sessions: map[string]*memorySession{}, markers: map[string]time.Time{}}
		s.users[userID] = u
	}
	return u
}

// live returns the session when it exists and has not expired, dropping it
// otherwise, as Redis would on access.
func (u *memoryUser) live(id string, now time.Time) *memorySession {
	sess := u.sessions[id]
	if sess != nil && !now.Before(sess.ExpiresAt) {
		delete(u.sessions, id)
		return nil
	}
	return sess
}

func (s *MemoryStore) revokeLocked(u *memoryUser, id string, now time.Time) {
	sess := u.sessions[id]
	delete(u.sessions, id)
	if sess == nil {
		return
	}
	if ttl := s.policy.markerTTL(now, sess.tokenExpiry); ttl > 0 {
		u.markers[id] = now.Add(ttl)
	}
}

// Access implements Store.
func (s *MemoryStore) Access(_ context.Context, req AccessRequest) (AccessResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	now, p := req.Now, s.policy
	u := s.user(req.UserID)
	if sess := u.live(req.SessionID, now); sess != nil {
		return s.refreshLocked(u, sess, req), nil
	}

	if until, ok := u.markers[req.SessionID]; ok && now.Before(until) {
		return AccessResult{Status: StatusRevoked, Reason: ReasonMarker}, nil
	}
	iat := req.IssuedAt.Truncate(time.Second)
	if iat.IsZero() {
		iat = now
	}
	// Not after, as in the Redis script: an iat in the same second as the
	// instant may belong to a token issued before it.
	if now.Before(u.revokedUntil) && !iat.After(u.revokedBefore) {
		return AccessResult{Status: StatusRevoked, Reason: ReasonRevokedBefore}, nil
	}
	// No leeway, as in the Redis script: idle expiry must not be undone.
	if now.Sub(iat) > p.CreateWindow {
		return AccessResult{Status: StatusExpired, Reason: ReasonCreateWindow}, nil
	}
	if p.AbsoluteLifetime > 0 && now.Sub(iat)+p.Leeway >= p.AbsoluteLifetime {
		return AccessResult{Status: StatusExpired, Reason: ReasonAbsoluteLifetime}, nil
	}

	var res AccessResult
	if p.MaxPerUser > 0 {
		victims := u.liveSorted(now)
		for i := 0; i <= len(victims)-p.MaxPerUser; i++ {
			s.revokeLocked(u, victims[i].ID, now)
			res.Evicted = append(res.Evicted, victims[i].ID)
		}
	}
	now = now.Truncate(time.Millisecond)
	var deadline time.Time
	if p.AbsoluteLifetime > 0 {
		deadline = now.Add(p.AbsoluteLifetime)
	}
	sess := &memorySession{
		Session: Session{
			ID: req.SessionID, UserID: req.UserID, Email: req.Email,
			CreatedAt: now.UTC(), LastActivity: now.UTC(),
			ExpiresAt: now.Add(p.sessionTTL(now, deadline)).UTC(),
			IP:        req.Client.IP, UserAgent: req.Client.UserAgent,
			Method: req.Client.Method, Path: req.Client.Path,
		},
		tokenExpiry: req.ExpiresAt,
		deadline:    deadline,
		loggedAt:    now,
	}
	u.sessions[req.SessionID] = sess
	res.Status = StatusCreated
	res.Session = sess.Session
	res.LogActivity = true
	return res, nil
}

func (s *MemoryStore) refreshLocked(u *memoryUser, sess *memorySession, req AccessRequest) AccessResult {
	now, p := req.Now.Truncate(time.Millisecond), s.policy
	ttl := p.sessionTTL(now, sess.deadline)
	if ttl <= 0 {
		delete(u.sessions, sess.ID)
		return AccessResult{Status: StatusExpired, Reason: ReasonAbsoluteLifetime}
	}

	var res AccessResult
	ipChanged := sess.IP != req.Client.IP
	uaChanged := sess.UserAgent != req.Client.UserAgent
	if ipChanged {
		res.PreviousIP = sess.IP
	}
	if uaChanged {
		res.PreviousUserAgent = sess.UserAgent
	}
	if ipChanged && p.BindIP || uaChanged && p.BindUserAgent {
		s.revokeLocked(u, sess.ID, now)
		res.Status, res.Reason = StatusRevoked, ReasonIPChanged
		if !(ipChanged && p.BindIP) {
			res.Reason = ReasonUserAgentChanged
		}
		return res
	}

	if ipChanged || uaChanged || now.Sub(sess.LastActivity) >= p.TouchInterval {
		sess.LastActivity = now.UTC()
		sess.IP, sess.UserAgent = req.Client.IP, req.Client.UserAgent
		sess.Method, sess.Path = req.Client.Method, req.Client.Path
	}
	if now.Sub(sess.loggedAt) >= p.ActivityLogInterval {
		sess.loggedAt = now
		res.LogActivity = true
	}
	sess.ExpiresAt = now.Add(ttl).UTC()
	res.Status = StatusActive
	res.Session = sess.Session
	return res
}

// liveSorted returns the user's live sessions, soonest idle expiry first,
// which is the order the per-user limit evicts in.
func (u *memoryUser) liveSorted(now time.Time) []*memorySession {
	out := make([]*memorySession, 0, len(u.sessions))
	for id := range u.sessions {
		if sess := u.live(id, now); sess != nil {
			out = append(out, sess)
		}
	}
	slices.SortFunc(out, func(a, b *memorySession) int {
		if c := a.ExpiresAt.Compare(b.ExpiresAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out
}

// Revoke implements Store.
func (s *MemoryStore) Revoke(_ context.Context, userID, sessionID string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[userID]
	if u == nil || u.live(sessionID, now) == nil {
		return ErrNotFound
	}
	s.revokeLocked(u, sessionID, now)
	return nil
}

// RevokeUser implements Store.
func (s *MemoryStore) RevokeUser(_ context.Context, userID string, now time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.user(userID)
	live := u.liveSorted(now)
	for _, sess := range live {
		s.revokeLocked(u, sess.ID, now)
	}
	now = now.Truncate(time.Millisecond)
	if now.After(u.revokedBefore) {
		u.revokedBefore = now
	}
	u.revokedUntil = now.Add(s.policy.revokedBeforeTTL())
	return len(live), nil
}

// List implements Store.
func (s *MemoryStore) List(_ context.Context, userID string, now time.Time) ([]Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Session{}
	if u := s.users[userID]; u != nil {
		for _, sess := range u.liveSorted(now) {
			out = append(out, sess.Session)
		}
	}
	sortByActivity(out)
	return out, nil
}

// sortByActivity orders sessions newest activity first, then by id so that
// the order is stable.
func sortByActivity(list []Session) {
	slices.SortFunc(list, func(a, b Session) int {
		if c := b.LastActivity.Compare(a.LastActivity); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// Sweep implements Store. In memory nothing lacks an expiry, so it only
// drops expired sessions, markers and revoked-before instants, which the
// other methods ignore anyway.
func (s *MemoryStore) Sweep(_ context.Context, now time.Time) (SweepReport, error) {
	start := time.Now()
	report := SweepReport{StartedAt: now.UTC(), Removed: map[string]int{}}
	s.mu.Lock()
	defer s.mu.Unlock()

	for id, u := range s.users {
		report.Found += len(u.sessions) + len(u.markers)
		for sid := range u.sessions {
			if u.live(sid, now) == nil {
				report.Removed[RemovedStaleIndexEntry]++
			}
		}
		for sid, until := range u.markers {
			if !now.Before(until) {
				delete(u.markers, sid)
			}
		}
		if len(u.sessions) > 0 {
			report.Users++
			report.Sessions += len(u.sessions)
		}
		if len(u.sessions) == 0 && len(u.markers) == 0 && !now.Before(u.revokedUntil) {
			delete(s.users, id)
		}
	}
	report.Remaining = report.Sessions
	for _, u := range s.users {
		report.Remaining += len(u.markers)
	}
	report.Duration = time.Since(start)
	last := report
	s.lastSweep = &last
	return report, nil
}

// LastSweep implements Store.
func (s *MemoryStore) LastSweep(context.Context) (SweepReport, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastSweep == nil {
		return SweepReport{}, false, nil
	}
	return *s.lastSweep, true, nil
}

// Ping implements Store. It never fails for the memory store.
func (s *MemoryStore) Ping(context.Context) error { return nil }

// Close implements Store.
func (s *MemoryStore) Close() error { return nil }
