package sessions

import (
	"context"
	"time"
)

// Store keeps sessions, their activity metadata, the per-user index and
// revocation state. Every method is safe for concurrent use. Times are
// passed in so that tests can control the clock; a Redis store still lets
// Redis expire keys on its own clock.
type Store interface {
	// Access loads the session of a verified token and slides its idle
	// TTL, or creates it when policy allows, in one atomic step (one round
	// trip for Redis). A session revoked concurrently is never recreated.
	Access(ctx context.Context, req AccessRequest) (AccessResult, error)

	// Revoke deletes one session of userID with its metadata and index
	// entry, and leaves a marker until the token's exp so that the token
	// cannot create a session again. It returns ErrNotFound when the user
	// has no such live session.
	Revoke(ctx context.Context, userID, sessionID string, now time.Time) error

	// RevokeUser revokes every session of userID and records now as the
	// user's "revoked before" instant: tokens issued earlier are rejected
	// even if never seen. It returns how many sessions it revoked.
	RevokeUser(ctx context.Context, userID string, now time.Time) (int, error)

	// List returns the live sessions of userID, newest activity first;
	// an empty slice when there are none.
	List(ctx context.Context, userID string, now time.Time) ([]Session, error)

	// Sweep removes what TTLs cannot: session and metadata keys without a
	// TTL, index entries whose session is gone, and orphan metadata. When
	// another process holds the sweep lock it returns a report with
	// Skipped set and does nothing.
	Sweep(ctx context.Context, now time.Time) (SweepReport, error)

	// LastSweep returns the last finished sweep's report, from any process
	// sharing the store; ok is false when none is known.
	LastSweep(ctx context.Context) (report SweepReport, ok bool, err error)

	// Ping checks that the store responds.
	Ping(ctx context.Context) error

	// Close releases connections. The store is unusable afterwards.
	Close() error
}

// SweepReport sums up one sweep.
type SweepReport struct {
	StartedAt time.Time     `json:"started_at"`
	Duration  time.Duration `json:"duration_ns"`
	// Skipped is true when another process held the sweep lock.
	Skipped bool `json:"skipped"`
	// Found counts the session keys under the prefix that the sweep
	// examined: sessions, metadata, indexes, revocation markers and
	// revoked-before instants. Other keys under the prefix are not counted.
	Found int `json:"found"`
	// Sessions and Users count the live sessions and users with an index.
	Sessions int `json:"sessions"`
	Users    int `json:"users"`
	// Removed counts deletions by kind: "no_ttl", "orphan_metadata",
	// "stale_index_entry".
	Removed map[string]int `json:"removed"`
	// Remaining counts the session keys left after the sweep.
	Remaining int `json:"remaining"`

	// emptiedIndexes counts indexes that Redis deleted because the sweep
	// removed their last entry.
	emptiedIndexes int
}

// Removal kinds of SweepReport.Removed.
const (
	RemovedNoTTL           = "no_ttl"
	RemovedOrphanMetadata  = "orphan_metadata"
	RemovedStaleIndexEntry = "stale_index_entry"
)

// RemovedTotal returns the sum of Removed.
func (r SweepReport) RemovedTotal() int {
	n := 0
	for _, v := range r.Removed {
		n += v
	}
	return n
}
