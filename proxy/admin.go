package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/sessions"
)

// Admin serves the admin listener: health, readiness, metrics and, when an
// admin token is configured, the admin API.
type Admin struct {
	store   sessions.Store
	metrics *Metrics
	log     *zap.Logger
	now     func() time.Time
	// tokenDigest is SHA-256 of the admin token; comparing digests keeps
	// the comparison constant-time whatever the presented length.
	tokenDigest [sha256.Size]byte
	enabled     bool
	timeout     time.Duration

	// ready is false until serving starts and again once shutdown begins.
	ready atomic.Bool
	mux   *http.ServeMux
}

// NewAdmin returns the admin handler. An empty token turns /admin/* off.
func NewAdmin(store sessions.Store, metrics *Metrics, token string, timeout time.Duration, log *zap.Logger) *Admin {
	a := &Admin{store: store, metrics: metrics, log: log.Named("admin"), now: time.Now, timeout: timeout}
	if token != "" {
		a.enabled = true
		a.tokenDigest = sha256.Sum256([]byte(token))
	}
	a.mux = http.NewServeMux()
	a.mux.HandleFunc("/healthz", a.healthz)
	a.mux.HandleFunc("/readyz", a.readyz)
	a.mux.Handle("/metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	a.mux.HandleFunc("/admin/", a.serveAdmin)
	if os.Getenv("PPROF") == "1" {
		// NOTE: profiles reveal internals and cost CPU while taken, so they
		// are opt-in; they need no ADMIN_TOKEN, like /metrics. PPROF is
		// read here rather than in configs because it is a diagnostic
		// switch for benchmarks, not a product setting.
		a.mux.HandleFunc("/debug/pprof/", pprof.Index)
		a.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		a.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		a.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		a.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	}
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound, "No endpoint at "+r.URL.Path+
			"; the admin listener serves /healthz, /readyz, /metrics and /admin/.")
	})
	return a
}

// SetReady sets what /readyz reports besides store reachability.
func (a *Admin) SetReady(ready bool) { a.ready.Store(ready) }

// ServeHTTP implements http.Handler.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func (a *Admin) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *Admin) readyz(w http.ResponseWriter, r *http.Request) {
	if !a.ready.Load() {
		writeError(w, http.StatusServiceUnavailable, "not_ready", "sessiongate is starting or shutting down.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	if err := a.store.Ping(ctx); err != nil {
		a.log.Warn("readiness check failed", zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, CodeStoreUnavailable, "The session store is unreachable.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// checkToken compares the request's bearer token with the admin token. It
// returns an empty code when they match, else the rejection code and a
// message that names the problem.
func (a *Admin) checkToken(r *http.Request) (code, message string) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return CodeMissingToken, "The request has no Authorization header; send the value of ADMIN_TOKEN as a bearer token."
	}
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return CodeUnauthorized, "The Authorization header does not use the Bearer scheme; send the value of ADMIN_TOKEN as a bearer token."
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	if subtle.ConstantTimeCompare(got[:], a.tokenDigest[:]) != 1 {
		return CodeUnauthorized, "The admin bearer token does not match ADMIN_TOKEN."
	}
	return "", ""
}

// Admin actions as they appear in the "action" field of audit logs.
const (
	actionListSessions       = "list_sessions"
	actionRevokeUserSessions = "revoke_user_sessions"
	actionRevokeSession      = "revoke_session"
	actionStats              = "stats"
	actionUnknown            = "unknown"
)

// Audit results as they appear in the "result" field.
const (
	resultOK               = "ok"
	resultNotFound         = "not_found"
	resultBadRequest       = "bad_request"
	resultMethodNotAllowed = "method_not_allowed"
	resultUnauthorized     = "unauthorized"
	resultStoreUnavailable = "store_unavailable"
)

// adminRoute is a parsed /admin/* path.
type adminRoute struct {
	action string
	// allow lists the methods of the path for the Allow header.
	allow string
	// user is the unescaped user id; escapedUser is as it came in the path.
	user        string
	escapedUser string
	sessionID   string
}

// parseAdminPath maps an escaped path below /admin/ to its route. The user
// id is taken from the escaped path so that an id containing "/" can be
// sent as %2F. ok is false for a path that names no endpoint.
func parseAdminPath(escaped string) (route adminRoute, ok bool) {
	parts := strings.Split(strings.TrimPrefix(escaped, "/admin/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "stats":
		return adminRoute{action: actionStats, allow: http.MethodGet}, true
	case len(parts) == 3 && parts[0] == "users" && parts[2] == "sessions":
		return adminRoute{allow: "GET, DELETE", escapedUser: parts[1]}, true
	case len(parts) == 4 && parts[0] == "users" && parts[2] == "sessions":
		return adminRoute{action: actionRevokeSession, allow: http.MethodDelete, escapedUser: parts[1], sessionID: parts[3]}, true
	}
	return adminRoute{}, false
}

// serveAdmin routes /admin/*. Without a configured token the API does not
// exist (404), so a forgotten token cannot leave it open. Every request
// that reaches the API is logged once with the caller's remote address,
// the action and the result.
func (a *Admin) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if !a.enabled {
		writeError(w, http.StatusNotFound, CodeNotFound, "The admin API is off; set ADMIN_TOKEN to enable it.")
		return
	}

	// Authenticate before routing, so that a caller without the token
	// learns nothing about which paths exist.
	if code, message := a.checkToken(r); code != "" {
		a.log.Warn("admin request rejected", zap.String("remote_addr", r.RemoteAddr),
			zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.String("result", resultUnauthorized))
		writeError(w, http.StatusUnauthorized, code, message)
		return
	}

	route, ok := parseAdminPath(r.URL.EscapedPath())
	if !ok {
		a.audit(r, actionUnknown, resultNotFound, zap.String("path", r.URL.Path))
		writeError(w, http.StatusNotFound, CodeNotFound, "No admin endpoint at "+r.URL.Path+
			"; the admin API has GET /admin/stats, GET and DELETE /admin/users/{user}/sessions and DELETE /admin/users/{user}/sessions/{id}.")
		return
	}
	if route.action == "" {
		switch r.Method {
		case http.MethodGet:
			route.action = actionListSessions
		case http.MethodDelete:
			route.action = actionRevokeUserSessions
		default:
			route.action = actionUnknown
		}
	}
	if !slices.Contains(strings.Split(route.allow, ", "), r.Method) {
		a.audit(r, route.action, resultMethodNotAllowed, zap.String("method", r.Method))
		w.Header().Set("Allow", route.allow)
		writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			"Method "+r.Method+" is not allowed on "+r.URL.Path+"; use "+strings.ReplaceAll(route.allow, ", ", " or ")+".")
		return
	}

	if route.action != actionStats {
		user, err := url.PathUnescape(route.escapedUser)
		if err != nil || user == "" {
			a.audit(r, route.action, resultBadRequest, zap.String("user_id", route.escapedUser))
			writeError(w, http.StatusBadRequest, CodeBadRequest, "The user id in the path is empty or not valid percent-encoding.")
			return
		}
		route.user = user
	}
	if route.action == actionRevokeSession && !sessions.ValidSessionID(route.sessionID) {
		a.audit(r, route.action, resultBadRequest, zap.String("user_id", route.user), zap.String("session_id", route.sessionID))
		writeError(w, http.StatusBadRequest, CodeBadRequest, "The session id is malformed; ids are 22 URL-safe base64 characters.")
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	switch route.action {
	case actionStats:
		a.stats(ctx, w, r)
	case actionListSessions:
		a.listUser(ctx, w, r, route.user)
	case actionRevokeUserSessions:
		a.revokeUser(ctx, w, r, route.user)
	case actionRevokeSession:
		a.revokeOne(ctx, w, r, route.user, route.sessionID)
	}
}

// audit logs one admin request: who sent it, what it asked for and how it
// ended.
func (a *Admin) audit(r *http.Request, action, result string, fields ...zap.Field) {
	base := []zap.Field{zap.String("remote_addr", r.RemoteAddr), zap.String("action", action), zap.String("result", result)}
	a.log.Info("admin action", append(base, fields...)...)
}

func (a *Admin) listUser(ctx context.Context, w http.ResponseWriter, r *http.Request, user string) {
	list, err := a.store.List(ctx, user, a.now())
	if err != nil {
		a.failed(w, r, actionListSessions, err, zap.String("user_id", user))
		return
	}
	a.audit(r, actionListSessions, resultOK, zap.String("user_id", user), zap.Int("sessions", len(list)))
	writeJSON(w, http.StatusOK, map[string]any{"user_id": user, "sessions": list})
}

func (a *Admin) revokeUser(ctx context.Context, w http.ResponseWriter, r *http.Request, user string) {
	n, err := a.store.RevokeUser(ctx, user, a.now())
	if err != nil {
		a.failed(w, r, actionRevokeUserSessions, err, zap.String("user_id", user))
		return
	}
	a.audit(r, actionRevokeUserSessions, resultOK, zap.String("user_id", user), zap.Int("revoked", n))
	writeJSON(w, http.StatusOK, map[string]any{"user_id": user, "revoked": n})
}

func (a *Admin) revokeOne(ctx context.Context, w http.ResponseWriter, r *http.Request, user, id string) {
	err := a.store.Revoke(ctx, user, id, a.now())
	if errors.Is(err, sessions.ErrNotFound) {
		a.audit(r, actionRevokeSession, resultNotFound, zap.String("user_id", user), zap.String("session_id", id))
		writeError(w, http.StatusNotFound, CodeNotFound, "The user has no live session with this id.")
		return
	}
	if err != nil {
		a.failed(w, r, actionRevokeSession, err, zap.String("user_id", user), zap.String("session_id", id))
		return
	}
	a.audit(r, actionRevokeSession, resultOK, zap.String("user_id", user), zap.String("session_id", id), zap.Int("revoked", 1))
	writeJSON(w, http.StatusOK, map[string]any{"user_id": user, "session_id": id, "revoked": 1})
}

// stats returns the last sweep's report from any process sharing the
// store; last_sweep is null until a sweep has finished.
func (a *Admin) stats(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	report, ok, err := a.store.LastSweep(ctx)
	if err != nil {
		a.failed(w, r, actionStats, err)
		return
	}
	a.audit(r, actionStats, resultOK, zap.Bool("swept", ok))
	body := map[string]any{"last_sweep": nil}
	if ok {
		body["last_sweep"] = report
	}
	writeJSON(w, http.StatusOK, body)
}

// failed logs a store error of an admin action at Error level, because the
// operator must act, and responds with 503.
func (a *Admin) failed(w http.ResponseWriter, r *http.Request, action string, err error, fields ...zap.Field) {
	base := []zap.Field{zap.String("remote_addr", r.RemoteAddr), zap.String("action", action),
		zap.String("result", resultStoreUnavailable), zap.Error(err)}
	a.log.Error("admin action failed", append(base, fields...)...)
	writeError(w, http.StatusServiceUnavailable, CodeStoreUnavailable, "The session store is unavailable; try again shortly.")
}
