package tracking

import (
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/sessions"
)

// maxLoggedUserAgent bounds the User-Agent in logs; clients choose it.
const maxLoggedUserAgent = 256

// Recorder logs what a Store reported about a session's activity. It keeps
// no state: throttling lives in the store, so every replica sharing Redis
// logs a session's activity once per interval between them.
type Recorder struct {
	log *zap.Logger
}

// NewRecorder returns a Recorder that logs to log.
func NewRecorder(log *zap.Logger) *Recorder {
	return &Recorder{log: log.Named("tracking")}
}

// truncate shortens s to at most n bytes plus "...", cutting at a rune
// boundary so that the logged value stays valid UTF-8.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// Observe logs the outcome of one Store.Access for a request with route.
func (r *Recorder) Observe(req sessions.AccessRequest, res sessions.AccessResult) {
	ids := []zap.Field{zap.String("session_id", req.SessionID), zap.String("user_id", req.UserID)}

	// A bound session revoked for a change is always logged, even when the
	// stored value was empty and so PreviousIP or PreviousUserAgent is too.
	// NOTE: an unbound change from an empty User-Agent is not logged,
	// because AccessResult reports "" for both "unchanged" and "was empty".
	if res.PreviousIP != "" || res.Reason == sessions.ReasonIPChanged {
		r.log.Warn("session ip changed", append(ids,
			zap.String("old_ip", res.PreviousIP), zap.String("new_ip", req.Client.IP),
			zap.Bool("revoked", res.Status == sessions.StatusRevoked))...)
	}
	if res.PreviousUserAgent != "" || res.Reason == sessions.ReasonUserAgentChanged {
		r.log.Warn("session user agent changed", append(ids,
			zap.String("old_user_agent", truncate(res.PreviousUserAgent, maxLoggedUserAgent)),
			zap.String("new_user_agent", truncate(req.Client.UserAgent, maxLoggedUserAgent)),
			zap.Bool("revoked", res.Status == sessions.StatusRevoked))...)
	}
	for _, id := range res.Evicted {
		r.log.Info("session evicted by per-user limit", zap.String("session_id", id),
			zap.String("user_id", req.UserID), zap.String("new_session_id", req.SessionID))
	}

	switch res.Status {
	case sessions.StatusCreated:
		r.log.Info("session created", append(ids, zap.String("email", req.Email),
			zap.String("ip", req.Client.IP), zap.String("user_agent", truncate(req.Client.UserAgent, maxLoggedUserAgent)))...)
	case sessions.StatusActive:
		if res.LogActivity {
			r.log.Info("session activity", append(ids, zap.String("email", req.Email),
				zap.String("ip", req.Client.IP), zap.String("method", req.Client.Method),
				zap.String("route", req.Client.Path))...)
		}
	case sessions.StatusRevoked, sessions.StatusExpired:
		r.log.Debug("session rejected", append(ids, zap.String("status", res.Status.String()),
			zap.String("reason", res.Reason))...)
	}
}
