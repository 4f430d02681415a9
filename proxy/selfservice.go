package proxy

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/sessions"
)

// sessionView is a session as its owner sees it.
type sessionView struct {
	sessions.Session
	Current bool `json:"current"`
}

// serveSelf serves the caller's own session endpoints under ReservedPrefix.
// Every one needs a valid token with a live session, and acts only on that
// token's user: another user's session id is not found.
func (g *Gateway) serveSelf(w http.ResponseWriter, r *http.Request, reqPath string) {
	rest := strings.TrimPrefix(reqPath, ReservedPrefix)
	route, allow := selfRoute(rest)
	if route == "" {
		g.reject(w, http.StatusNotFound, CodeNotFound, "No sessiongate endpoint at "+r.URL.Path+
			"; the endpoints are GET "+ReservedPrefix+"sessions, DELETE "+ReservedPrefix+"sessions/{id}, POST "+
			ReservedPrefix+"logout and POST "+ReservedPrefix+"logout-all.")
		return
	}
	if r.Method != allow {
		w.Header().Set("Allow", allow)
		g.reject(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "Method "+r.Method+" is not allowed on "+r.URL.Path+"; use "+allow+".")
		return
	}

	token, fromCookie, ok := extractToken(r, g.cfg.TokenCookie)
	if !ok {
		g.reject(w, http.StatusUnauthorized, CodeMissingToken, "The request has no bearer token.")
		return
	}
	// A browser sends the cookie on cross-site form posts too; refuse those
	// so that another site cannot log the user out.
	if fromCookie && r.Method != http.MethodGet && r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		g.reject(w, http.StatusForbidden, CodeForbidden, "Cross-site requests cannot change sessions with the token cookie; send the token as a bearer header.")
		return
	}
	id, code, status := g.authenticate(r, token, false)
	if code != "" {
		g.reject(w, status, code, rejectMessages[code])
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.RedisTimeout*4)
	defer cancel()
	userID := id.claims.UserID

	switch route {
	case "list":
		list, err := g.store.List(ctx, userID, g.now())
		if err != nil {
			g.storeFailed(w, "list sessions", err, userID)
			return
		}
		views := make([]sessionView, len(list))
		for i, s := range list {
			views[i] = sessionView{Session: s, Current: s.ID == id.sessionID}
		}
		writeJSON(w, http.StatusOK, map[string]any{"user_id": userID, "sessions": views})

	case "delete":
		target := strings.TrimPrefix(rest, "sessions/")
		if !sessions.ValidSessionID(target) {
			g.reject(w, http.StatusBadRequest, CodeBadRequest, "The session id is malformed; ids are 22 URL-safe base64 characters.")
			return
		}
		err := g.store.Revoke(ctx, userID, target, g.now())
		if errors.Is(err, sessions.ErrNotFound) {
			g.reject(w, http.StatusNotFound, CodeNotFound, "No live session with this id belongs to you.")
			return
		}
		if err != nil {
			g.storeFailed(w, "revoke session", err, userID)
			return
		}
		g.log.Info("session revoked", zap.String("reason", "self_service"), zap.String("session_id", target),
			zap.String("user_id", userID), zap.String("by_session_id", id.sessionID))
		writeJSON(w, http.StatusOK, map[string]any{"revoked": 1, "session_id": target})

	case "logout":
		// ErrNotFound means a concurrent request revoked the session after
		// authenticate loaded it; the caller is logged out either way.
		revoked := 1
		err := g.store.Revoke(ctx, userID, id.sessionID, g.now())
		if errors.Is(err, sessions.ErrNotFound) {
			revoked = 0
		} else if err != nil {
			g.storeFailed(w, "revoke session", err, userID)
			return
		}
		g.log.Info("session revoked", zap.String("reason", "logout"), zap.String("session_id", id.sessionID), zap.String("user_id", userID))
		writeJSON(w, http.StatusOK, map[string]any{"revoked": revoked, "session_id": id.sessionID})

	case "logout-all":
		n, err := g.store.RevokeUser(ctx, userID, g.now())
		if err != nil {
			g.storeFailed(w, "revoke all sessions", err, userID)
			return
		}
		g.log.Info("all sessions of user revoked", zap.String("reason", "logout_all"), zap.String("user_id", userID), zap.Int("revoked", n))
		writeJSON(w, http.StatusOK, map[string]any{"revoked": n, "user_id": userID})
	}
}

// selfRoute names the endpoint of a path below ReservedPrefix and the
// methods it allows; route is empty for an unknown path.
func selfRoute(rest string) (route, allow string) {
	switch {
	case rest == "sessions":
		return "list", http.MethodGet
	case strings.HasPrefix(rest, "sessions/") && !strings.Contains(rest[len("sessions/"):], "/"):
		return "delete", http.MethodDelete
	case rest == "logout":
		return "logout", http.MethodPost
	case rest == "logout-all":
		return "logout-all", http.MethodPost
	}
	return "", ""
}

func (g *Gateway) storeFailed(w http.ResponseWriter, step string, err error, userID string) {
	g.log.Error(step+" failed", zap.Error(err), zap.String("user_id", userID))
	g.reject(w, http.StatusServiceUnavailable, CodeStoreUnavailable, rejectMessages[CodeStoreUnavailable])
}
