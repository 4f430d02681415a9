// Package sessions holds the session model, JWT verification, the Store
// contract with its Redis and in-memory implementations, revocation and the
// cleanup sweep.
//
// Policy (lifetimes, the create window, the per-user limit) is a plain
// Policy value. A Store applies it inside one atomic step per call, because
// the check and the write must not be split by a concurrent revocation.
package sessions

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"time"
)

// SessionIDLength is the length of a session id: 22 URL-safe base64
// characters, the first 128 bits of SHA-256 over the raw token.
const SessionIDLength = 22

// TokenDigest returns SHA-256 over the raw token. Its first 128 bits name the
// session; the whole digest keys the verification cache.
func TokenDigest(token string) [sha256.Size]byte {
	return sha256.Sum256([]byte(token))
}

// SessionID derives the session id from a token digest. The id is
// deterministic, so an operator can find the session of a token, and not
// reversible, so the id alone is no credential.
func SessionID(digest [sha256.Size]byte) string {
	return base64.RawURLEncoding.EncodeToString(digest[:16])
}

// ValidSessionID reports whether id has the shape SessionID produces.
func ValidSessionID(id string) bool {
	if len(id) != SessionIDLength {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(id)
	return err == nil
}

// Status is the outcome of Store.Access.
type Status int

const (
	// StatusActive means a live session was found and its idle TTL reset.
	StatusActive Status = iota + 1
	// StatusCreated means the token was fresh enough and a session was made.
	StatusCreated
	// StatusExpired means there is no usable session: it went idle, passed
	// the absolute lifetime, or the token is older than the create window.
	StatusExpired
	// StatusRevoked means the session or all of the user's sessions were
	// revoked, or a bound IP or User-Agent changed.
	StatusRevoked
)

func (s Status) String() string {
	switch s {
	case StatusActive:
		return "active"
	case StatusCreated:
		return "created"
	case StatusExpired:
		return "expired"
	case StatusRevoked:
		return "revoked"
	}
	return "unknown"
}

// Reasons given with StatusExpired and StatusRevoked.
const (
	ReasonCreateWindow     = "create_window"
	ReasonAbsoluteLifetime = "absolute_lifetime"
	ReasonMarker           = "revoked"
	ReasonRevokedBefore    = "revoked_before"
	ReasonIPChanged        = "ip_changed"
	ReasonUserAgentChanged = "user_agent_changed"
)

// Client describes the request that touches a session.
type Client struct {
	IP        string
	UserAgent string
	Method    string
	Path      string
}

// AccessRequest is the input of Store.Access, which loads, refreshes or
// creates the session of one verified token.
type AccessRequest struct {
	SessionID string
	UserID    string
	Email     string
	// IssuedAt is the token's iat; zero when the token has none, which
	// counts as issued now.
	IssuedAt time.Time
	// ExpiresAt is the token's exp; revocation markers live until then.
	ExpiresAt time.Time
	Client    Client
	Now       time.Time
}

// AccessResult is the outcome of one Store.Access call.
type AccessResult struct {
	Status Status
	// Reason names why a request was expired or revoked. It is empty
	// otherwise.
	Reason string
	// Session holds the stored fields after the call, for Active and Created.
	Session Session
	// PreviousIP and PreviousUserAgent are the stored values when the
	// request's differ from them; empty when unchanged.
	PreviousIP        string
	PreviousUserAgent string
	// LogActivity is true for at most one request per session per
	// Policy.ActivityLogInterval, across every process sharing the store.
	LogActivity bool
	// Evicted lists sessions revoked to keep the user within MaxPerUser.
	Evicted []string
}

// Session is a stored session with its activity metadata.
type Session struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	Email     string    `json:"email,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// LastActivity is written at most once per Policy.TouchInterval unless
	// the IP or User-Agent changed.
	LastActivity time.Time `json:"last_activity"`
	// ExpiresAt is when the session ends if it stays idle.
	ExpiresAt time.Time `json:"expires_at"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
	// Method and Path are those of the request that last wrote LastActivity.
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
}

// Policy is the session policy a Store enforces.
type Policy struct {
	// Lifetime is the idle timeout; every accepted request resets it.
	Lifetime time.Duration
	// AbsoluteLifetime ends a session this long after its creation even
	// when active; 0 means no limit. A token whose iat is at least this
	// old (less Leeway) cannot create a session, so a session that reached
	// the limit cannot be created again by its token.
	AbsoluteLifetime time.Duration
	// CreateWindow is the maximum age of a token's iat at which the token
	// may create a session, so an idle-expired session cannot be revived by
	// its token.
	CreateWindow time.Duration
	// Leeway is the allowed clock skew between the token issuer and us.
	Leeway time.Duration
	// MaxPerUser caps live sessions per user; 0 means unlimited.
	MaxPerUser int
	// TouchInterval spaces writes of LastActivity.
	TouchInterval time.Duration
	// ActivityLogInterval spaces AccessResult.LogActivity per session; 0
	// means every request.
	ActivityLogInterval time.Duration
	// BindIP and BindUserAgent revoke a session whose IP or User-Agent
	// changes.
	BindIP        bool
	BindUserAgent bool
	// MaxMarkerTTL caps how long a revocation marker lives when the token's
	// exp is far away.
	MaxMarkerTTL time.Duration
}

// DefaultMaxMarkerTTL caps revocation markers of long-lived tokens.
const DefaultMaxMarkerTTL = 30 * 24 * time.Hour

// sessionTTL returns how long a session may stay idle from now, shortened
// by the absolute deadline when one is set; zero or less means over.
func (p Policy) sessionTTL(now, deadline time.Time) time.Duration {
	ttl := p.Lifetime
	if !deadline.IsZero() {
		if left := deadline.Sub(now); left < ttl {
			ttl = left
		}
	}
	return ttl
}

// markerTTL returns how long a revocation marker must live so that the
// token expiring at exp cannot create a session again. It returns zero when
// the token is already unusable.
func (p Policy) markerTTL(now, exp time.Time) time.Duration {
	maxTTL := p.MaxMarkerTTL
	if maxTTL <= 0 {
		maxTTL = DefaultMaxMarkerTTL
	}
	if exp.IsZero() {
		return maxTTL
	}
	ttl := exp.Sub(now) + p.Leeway
	return min(ttl, maxTTL)
}

// revokedBeforeTTL is how long a user's "revoked before" instant must be
// kept: after the create window a token issued earlier cannot create a
// session anyway.
func (p Policy) revokedBeforeTTL() time.Duration {
	return p.CreateWindow + 2*p.Leeway + time.Second
}

// Errors of Store methods. Wrapped errors from the backing store are
// reported as they are; these mark the outcomes a caller branches on.
var (
	// ErrNotFound means the session does not exist or is not the user's.
	ErrNotFound = errors.New("session not found")
)

// userTag returns the Redis Cluster hash tag content for a user id, so that
// every key of one user lands in one slot. Ids made of safe characters are
// kept readable; any other id is base64url-encoded behind a "~".
func userTag(userID string) string {
	for i := 0; i < len(userID); i++ {
		c := userID[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.@+", c) >= 0) {
			return "~" + base64.RawURLEncoding.EncodeToString([]byte(userID))
		}
	}
	return userID
}
