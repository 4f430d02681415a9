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
		writeError(w, http.StatusNotFound, CodeNotFound, "No such endpoint.")
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

func (a *Admin) authorized(r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(got[:], a.tokenDigest[:]) == 1
}

// serveAdmin routes /admin/*. Without a configured token the API does not
// exist (404), so a forgotten token cannot leave it open.
func (a *Admin) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if !a.enabled {
		writeError(w, http.StatusNotFound, CodeNotFound, "The admin API is off; set ADMIN_TOKEN to enable it.")
		return
	}
	if !a.authorized(r) {
		a.log.Warn("admin request rejected", zap.String("remote_addr", r.RemoteAddr), zap.String("method", r.Method), zap.String("path", r.URL.Path))
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, "A valid admin bearer token is required.")
		return
	}

	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/admin/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "stats":
		if a.method(w, r, http.MethodGet) {
			a.stats(w, r)
		}
	case len(parts) == 3 && parts[0] == "users" && parts[2] == "sessions":
		user, ok := a.userParam(w, parts[1])
		if !ok {
			return
		}
		switch r.Method {
		case http.MethodGet:
			a.listUser(w, r, user)
		case http.MethodDelete:
			a.revokeUser(w, r, user)
		default:
			w.Header().Set("Allow", "GET, DELETE")
			writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "Method "+r.Method+" is not allowed here; use GET or DELETE.")
		}
	case len(parts) == 4 && parts[0] == "users" && parts[2] == "sessions":
		user, ok := a.userParam(w, parts[1])
		if !ok || !a.method(w, r, http.MethodDelete) {
			return
		}
		a.revokeOne(w, r, user, parts[3])
	default:
		writeError(w, http.StatusNotFound, CodeNotFound, "No such admin endpoint.")
	}
}

func (a *Admin) method(w http.ResponseWriter, r *http.Request, allow string) bool {
	if r.Method == allow {
		return true
	}
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "Method "+r.Method+" is not allowed here; use "+allow+".")
	return false
}

func (a *Admin) userParam(w http.ResponseWriter, escaped string) (string, bool) {
	user, err := url.PathUnescape(escaped)
	if err != nil || user == "" {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "The user id in the path is empty or badly escaped.")
		return "", false
	}
	return user, true
}

func (a *Admin) audit(r *http.Request, action string, fields ...zap.Field) {
	a.log.Info("admin action", append([]zap.Field{zap.String("remote_addr", r.RemoteAddr), zap.String("action", action)}, fields...)...)
}

func (a *Admin) listUser(w http.ResponseWriter, r *http.Request, user string) {
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	list, err := a.store.List(ctx, user, a.now())
	if err != nil {
		a.failed(w, r, "list sessions", err, user)
		return
	}
	a.audit(r, "list_sessions", zap.String("user_id", user), zap.Int("sessions", len(list)))
	writeJSON(w, http.StatusOK, map[string]any{"user_id": user, "sessions": list})
}

func (a *Admin) revokeUser(w http.ResponseWriter, r *http.Request, user string) {
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	n, err := a.store.RevokeUser(ctx, user, a.now())
	if err != nil {
		a.failed(w, r, "revoke all sessions", err, user)
		return
	}
	a.audit(r, "revoke_user_sessions", zap.String("user_id", user), zap.Int("revoked", n))
	writeJSON(w, http.StatusOK, map[string]any{"user_id": user, "revoked": n})
}

func (a *Admin) revokeOne(w http.ResponseWriter, r *http.Request, user, id string) {
	if !sessions.ValidSessionID(id) {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "The session id is malformed; ids are 22 URL-safe base64 characters.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	err := a.store.Revoke(ctx, user, id, a.now())
	if errors.Is(err, sessions.ErrNotFound) {
		a.audit(r, "revoke_session", zap.String("user_id", user), zap.String("session_id", id), zap.String("result", "not_found"))
		writeError(w, http.StatusNotFound, CodeNotFound, "The user has no live session with this id.")
		return
	}
	if err != nil {
		a.failed(w, r, "revoke session", err, user)
		return
	}
	a.audit(r, "revoke_session", zap.String("user_id", user), zap.String("session_id", id), zap.String("result", "revoked"))
	writeJSON(w, http.StatusOK, map[string]any{"user_id": user, "session_id": id, "revoked": 1})
}

func (a *Admin) stats(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	report, ok, err := a.store.LastSweep(ctx)
	if err != nil {
		a.failed(w, r, "read stats", err, "")
		return
	}
	a.audit(r, "stats")
	body := map[string]any{"last_sweep": nil}
	if ok {
		body["last_sweep"] = report
	}
	writeJSON(w, http.StatusOK, body)
}

func (a *Admin) failed(w http.ResponseWriter, r *http.Request, step string, err error, user string) {
	a.log.Error("admin "+step+" failed", zap.Error(err), zap.String("user_id", user), zap.String("remote_addr", r.RemoteAddr))
	writeError(w, http.StatusServiceUnavailable, CodeStoreUnavailable, "The session store is unavailable; try again shortly.")
}
