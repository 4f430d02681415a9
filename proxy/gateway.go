package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/configs"
	"github.com/sessiongate/sessiongate/sessions"
	"github.com/sessiongate/sessiongate/tracking"
)

// ReservedPrefix is the path prefix of sessiongate's own endpoints on the
// public listener; requests under it are never forwarded.
const ReservedPrefix = "/.sessiongate/"

// maxTokenBytes rejects absurd tokens before hashing or parsing them.
const maxTokenBytes = 16 << 10

// Gateway is the public handler: it checks the caller's token and session
// and forwards accepted requests with verified identity headers.
type Gateway struct {
	cfg      configs.Config
	verifier *sessions.Verifier
	store    sessions.Store
	recorder *tracking.Recorder
	proxies  tracking.Proxies
	metrics  *Metrics
	log      *zap.Logger
	now      func() time.Time

	throttle     *logThrottle
	proxy        *httputil.ReverseProxy
	filter       headerFilter
	claimHeaders map[string]string
	publicPaths  []string
	logoutPaths  []string
}

// Options are a Gateway's collaborators.
type Options struct {
	Config   configs.Config
	Verifier *sessions.Verifier
	Store    sessions.Store
	Metrics  *Metrics
	Logger   *zap.Logger
	// Transport reaches the backend; nil means NewTransport().
	Transport http.RoundTripper
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// NewGateway builds the public handler from a validated configuration.
func NewGateway(o Options) (*Gateway, error) {
	upstream, err := url.Parse(o.Config.UpstreamURL)
	if err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	g := &Gateway{
		cfg:          o.Config,
		verifier:     o.Verifier,
		store:        o.Store,
		recorder:     tracking.NewRecorder(o.Logger),
		proxies:      tracking.NewProxies(o.Config.TrustedPrefixes()),
		metrics:      o.Metrics,
		log:          o.Logger.Named("proxy"),
		now:          o.Now,
		throttle:     newLogThrottle(10 * time.Second),
		claimHeaders: o.Config.ClaimHeaders(),
		publicPaths:  cleanPrefixes(o.Config.PublicPaths),
		logoutPaths:  cleanPrefixes(o.Config.LogoutPaths),
	}
	identity := []string{o.Config.HeaderUserID, o.Config.HeaderUserEmail, o.Config.HeaderSessionID}
	for _, h := range g.claimHeaders {
		identity = append(identity, h)
	}
	g.filter = newHeaderFilter(identity...)
	g.proxy = g.newReverseProxy(upstream, o.Transport)
	return g, nil
}

func cleanPrefixes(list []string) []string {
	out := make([]string, 0, len(list))
	for _, p := range list {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// matchPrefix reports whether p equals a prefix or lies below it. A prefix
// without a trailing slash matches only whole segments: /api/public matches
// /api/public/x but not /api/publicity.
func matchPrefix(prefixes []string, p string) bool {
	for _, prefix := range prefixes {
		if !strings.HasPrefix(p, prefix) {
			continue
		}
		if len(p) == len(prefix) || strings.HasSuffix(prefix, "/") || p[len(prefix)] == '/' {
			return true
		}
	}
	return false
}

// cleanPath resolves "." and ".." and doubled slashes so that
// /public/../private is not taken for a public path.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// identity holds the verified claims and session of a request, passed to
// the reverse proxy's Rewrite through the request context.
type identity struct {
	claims    sessions.Claims
	sessionID string
	clientIP  string
	// token is the verified token, and fromCookie records where it was found,
	// so that the backend receives that credential and no other.
	token      string
	fromCookie bool
	// anonymous forwards without identity headers. dropCredentials also
	// removes the presented token, because it was rejected and a backend
	// that reads it (a refresh route, say) must not act on it.
	anonymous       bool
	dropCredentials bool
}

// rejectedToken marks anonymous forwarding of a request whose token was
// rejected.
var rejectedToken = &identity{anonymous: true, dropCredentials: true}

type identityKey struct{}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The reserved prefix is matched on the cleaned path, so that
	// //.sessiongate/ or /x/../.sessiongate/ cannot reach the backend.
	reqPath := cleanPath(r.URL.Path)
	if strings.HasPrefix(reqPath, ReservedPrefix) || reqPath == strings.TrimSuffix(ReservedPrefix, "/") {
		g.serveSelf(w, r, reqPath)
		return
	}
	// Java servlet containers read "..;" as "..", and IIS reads "\" as "/",
	// so such a path could mean another route to the backend than to us.
	if strings.Contains(r.URL.Path, "..;") || strings.ContainsRune(r.URL.Path, '\\') {
		g.reject(w, http.StatusBadRequest, CodeBadRequest, "The path contains \"..;\" or a backslash, which backends resolve differently.")
		return
	}
	// Access is decided on the cleaned path, so the backend gets that path
	// and not one it might resolve to another route.
	if reqPath != r.URL.Path {
		r.URL.Path, r.URL.RawPath = reqPath, ""
	}

	// Browsers send CORS preflights without credentials; the backend must
	// handle them. They carry no identity and, by the Fetch standard, no
	// body, so none is forwarded.
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if preflight {
		r.Body, r.ContentLength, r.TransferEncoding = http.NoBody, 0, nil
	}
	public := preflight || matchPrefix(g.publicPaths, reqPath)

	// Find and verify the token.
	token, fromCookie, ok := extractToken(r, g.cfg.TokenCookie)
	if !ok {
		if public {
			g.forward(w, r, nil, "anonymous")
			return
		}
		g.reject(w, http.StatusUnauthorized, CodeMissingToken, "The request has no bearer token.")
		return
	}
	id, code, status := g.authenticate(r, token, public)
	if code != "" {
		if public {
			g.forward(w, r, rejectedToken, "anonymous")
			return
		}
		g.reject(w, status, code, rejectMessages[code])
		return
	}

	id.token, id.fromCookie = token, fromCookie

	// A backend logout route ends the session first, so the token is dead
	// even if the backend's own logout fails.
	if id.sessionID != "" && matchPrefix(g.logoutPaths, reqPath) {
		g.logout(r.Context(), id)
	}
	g.forward(w, r, id, "forwarded")
}

var rejectMessages = map[string]string{
	CodeInvalidToken:     "The bearer token is invalid.",
	CodeSessionExpired:   "The session has expired; sign in again.",
	CodeSessionRevoked:   "The session has been revoked; sign in again.",
	CodeStoreUnavailable: "The session store is unavailable; try again shortly.",
}

// authenticate verifies token and loads or creates its session. It returns
// a rejection code and HTTP status when the request must not pass as this
// user. In REDIS_FAILURE_MODE=open a store failure passes with the token's
// identity.
func (g *Gateway) authenticate(r *http.Request, token string, public bool) (*identity, string, int) {
	if len(token) > maxTokenBytes {
		return nil, CodeInvalidToken, http.StatusUnauthorized
	}
	digest := sessions.TokenDigest(token)
	claims, err := g.verifier.Verify(token, digest)
	if err != nil {
		// Info, but at most once per reason per interval: a wrong secret or
		// key makes every request fail the same way, and the operator needs
		// to see why without debug logs.
		if ok, suppressed := g.throttle.allow("token:"+rejectReason(err), time.Now()); ok {
			g.log.Info("token rejected", zap.Error(err), zap.String("path", r.URL.Path), suppressed)
		} else {
			g.log.Debug("token rejected", zap.Error(err), zap.String("path", r.URL.Path))
		}
		return nil, CodeInvalidToken, http.StatusUnauthorized
	}

	id := &identity{claims: claims, sessionID: sessions.SessionID(digest), clientIP: g.proxies.ClientIP(r)}
	req := sessions.AccessRequest{
		SessionID: id.sessionID,
		UserID:    claims.UserID,
		Email:     claims.Email,
		IssuedAt:  claims.IssuedAt,
		ExpiresAt: claims.ExpiresAt,
		Client: sessions.Client{
			IP:        id.clientIP,
			UserAgent: r.UserAgent(),
			Method:    r.Method,
			Path:      r.URL.Path,
		},
		Now: g.now(),
	}

	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.RedisTimeout)
	start := time.Now()
	res, err := g.store.Access(ctx, req)
	cancel()
	g.metrics.storeLatency.Observe(time.Since(start).Seconds())
	if err != nil {
		g.metrics.storeErrors.Inc()
		if errors.Is(r.Context().Err(), context.Canceled) {
			return nil, CodeStoreUnavailable, http.StatusServiceUnavailable
		}
		if g.cfg.RedisFailureMode == "open" {
			if ok, suppressed := g.throttle.allow("store_open", time.Now()); ok {
				g.log.Warn("session store failed, forwarding with token identity", suppressed,
					zap.Error(err), zap.String("session_id", id.sessionID), zap.String("user_id", claims.UserID))
			}
			return id, "", 0
		}
		if ok, suppressed := g.throttle.allow("store", time.Now()); ok {
			g.log.Error("session store failed", zap.Error(err),
				zap.String("session_id", id.sessionID), zap.String("user_id", claims.UserID), suppressed)
		}
		return nil, CodeStoreUnavailable, http.StatusServiceUnavailable
	}
	g.recorder.Observe(req, res)

	switch res.Status {
	case sessions.StatusActive:
		return id, "", 0
	case sessions.StatusCreated:
		g.metrics.sessions.WithLabelValues("created").Inc()
		if n := len(res.Evicted); n > 0 {
			g.metrics.sessions.WithLabelValues("evicted").Add(float64(n))
		}
		return id, "", 0
	case sessions.StatusExpired:
		g.metrics.sessions.WithLabelValues("expired").Inc()
		return nil, CodeSessionExpired, http.StatusUnauthorized
	default:
		g.metrics.sessions.WithLabelValues("revoked").Inc()
		return nil, CodeSessionRevoked, http.StatusUnauthorized
	}
}

func (g *Gateway) logout(ctx context.Context, id *identity) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.RedisTimeout)
	defer cancel()
	err := g.store.Revoke(ctx, id.claims.UserID, id.sessionID, g.now())
	switch {
	case err == nil:
		g.metrics.sessions.WithLabelValues("logout").Inc()
		g.log.Info("session revoked", zap.String("reason", "logout_path"),
			zap.String("session_id", id.sessionID), zap.String("user_id", id.claims.UserID))
	case errors.Is(err, sessions.ErrNotFound):
	default:
		// NOTE: the backend's logout still runs; the session then ends by
		// idle expiry instead.
		g.log.Error("revoke session on logout failed", zap.Error(err),
			zap.String("session_id", id.sessionID), zap.String("user_id", id.claims.UserID))
	}
}

func (g *Gateway) reject(w http.ResponseWriter, status int, code, message string) {
	g.metrics.requests.WithLabelValues(code).Inc()
	writeError(w, status, code, message)
}

// extractToken returns the bearer token of the Authorization header, else
// the value of the named cookie.
// fromCookie is true when the token came from the cookie.
func extractToken(r *http.Request, cookie string) (token string, fromCookie, ok bool) {
	if auth := r.Header.Get("Authorization"); len(auth) > 7 && strings.EqualFold(auth[:6], "Bearer") && (auth[6] == ' ' || auth[6] == '\t') {
		// Any blank after the scheme, as backends such as tymon/jwt-auth
		// accept it too; otherwise they could read a token we skipped.
		token = strings.TrimSpace(auth[7:])
		return token, false, token != ""
	}
	if cookie != "" {
		if c, err := r.Cookie(cookie); err == nil && c.Value != "" {
			return c.Value, true, true
		}
	}
	return "", false, false
}

// rejectReason names the kind of a verification failure for log
// throttling, without token data.
func rejectReason(err error) string {
	for _, e := range []error{jwt.ErrTokenMalformed, jwt.ErrTokenSignatureInvalid, jwt.ErrTokenUnverifiable,
		jwt.ErrTokenExpired, jwt.ErrTokenNotValidYet, jwt.ErrTokenUsedBeforeIssued,
		jwt.ErrTokenInvalidAudience, jwt.ErrTokenInvalidIssuer, jwt.ErrTokenRequiredClaimMissing} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "other"
}
