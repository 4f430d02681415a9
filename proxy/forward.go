package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/tracking"
)

// NewTransport returns the transport to the backend. Go's default keeps two
// idle connections per host, so under concurrency a proxy dials the backend
// for most requests and piles up TIME_WAIT sockets. A sidecar talks to one
// host, so it keeps many.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy: nil, // the backend is local; never route it through HTTP_PROXY
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

func (g *Gateway) newReverseProxy(upstream *url.URL, transport http.RoundTripper) *httputil.ReverseProxy {
	if transport == nil {
		transport = NewTransport()
	}
	errLog, _ := zap.NewStdLogAt(g.log.Named("reverseproxy"), zap.WarnLevel)
	return &httputil.ReverseProxy{
		// Rewrite runs after hop-by-hop headers are removed from the
		// outbound request, so a client's "Connection: X-User-Id" cannot
		// remove the identity headers set here (it could with Director).
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			g.rewriteHeaders(pr)
		},
		Transport:    transport,
		BufferPool:   copyBuffers,
		ErrorHandler: g.upstreamError,
		ErrorLog:     errLog,
		// FlushInterval 0 still flushes text/event-stream and responses of
		// unknown length at once, so SSE and streams are not buffered.
	}
}

// copyBuffers lends ReverseProxy the buffers it copies response bodies
// through. Without a pool it allocates 32 KiB per response, which was about
// two thirds of the bytes allocated per proxied request and so drove most
// of the garbage collector's work.
var copyBuffers = &bufferPool{}

// bufferPool implements httputil.BufferPool with a sync.Pool of 32 KiB
// buffers, the size ReverseProxy allocates when it has no pool.
type bufferPool struct{ pool sync.Pool }

func (p *bufferPool) Get() []byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, 32<<10)
}

func (p *bufferPool) Put(b []byte) { p.pool.Put(&b) }

// rewriteHeaders removes every client-supplied identity header and sets the
// verified ones and the X-Forwarded-* family.
func (g *Gateway) rewriteHeaders(pr *httputil.ProxyRequest) {
	out := pr.Out.Header
	g.filter.strip(out)

	id, _ := pr.In.Context().Value(identityKey{}).(*identity)
	g.rewriteCredentials(out, id)
	if id != nil && !id.anonymous {
		out.Set(g.cfg.HeaderUserID, id.claims.UserID)
		if id.claims.Email != "" {
			out.Set(g.cfg.HeaderUserEmail, id.claims.Email)
		}
		if id.sessionID != "" {
			out.Set(g.cfg.HeaderSessionID, id.sessionID)
		}
		for claim, header := range g.claimHeaders {
			if v, ok := id.claims.Forward[claim]; ok {
				out.Set(header, v)
			}
		}
	}
	g.setForwarded(pr, id)
}

// rewriteCredentials makes the backend receive exactly the credential that
// was verified: the bearer token as one clean header, or the cookie alone.
// A rejected token is removed entirely.
func (g *Gateway) rewriteCredentials(out http.Header, id *identity) {
	switch {
	case id == nil:
	case id.dropCredentials:
		out.Del("Authorization")
		if g.cfg.TokenCookie != "" {
			removeCookie(out, g.cfg.TokenCookie)
		}
	case id.anonymous:
	case id.fromCookie:
		out.Del("Authorization")
	default:
		out.Set("Authorization", "Bearer "+id.token)
	}
}

// removeCookie deletes the cookie called name from the Cookie headers of h
// and keeps the others.
func removeCookie(h http.Header, name string) {
	values := h.Values("Cookie")
	if len(values) == 0 {
		return
	}
	kept := make([]string, 0, len(values))
	for _, line := range values {
		var parts []string
		for _, part := range strings.Split(line, ";") {
			if n, _, _ := strings.Cut(strings.TrimSpace(part), "="); n != name {
				parts = append(parts, strings.TrimSpace(part))
			}
		}
		if len(parts) > 0 {
			kept = append(kept, strings.Join(parts, "; "))
		}
	}
	h.Del("Cookie")
	if len(kept) > 0 {
		h["Cookie"] = kept
	}
}

// lastValue returns the last comma-separated item of the last value of
// key: the one the nearest trusted proxy wrote.
func lastValue(h http.Header, key string) string {
	values := h.Values(key)
	if len(values) == 0 {
		return ""
	}
	last := values[len(values)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	return strings.TrimSpace(last)
}

// forwardingHeaders are the headers that carry the client's address,
// protocol and host. They are filtered in every spelling, because PHP and
// CGI backends read X_Forwarded_For as X-Forwarded-For.
var forwardingHeaders = newHeaderFilter("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip")

// setForwarded sets X-Forwarded-For, -Host and -Proto. A trusted peer's
// values are kept and the peer appended; an untrusted peer's are replaced,
// so it cannot choose the client IP the backend receives.
func (g *Gateway) setForwarded(pr *httputil.ProxyRequest, id *identity) {
	in, out := pr.In, pr.Out.Header
	peer, ok := tracking.PeerAddr(in)
	trusted := ok && g.proxies.Trusts(peer)
	forwardingHeaders.strip(out)

	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	host := in.Host
	if trusted {
		// ReverseProxy removed these from Out before Rewrite; restore the
		// trusted hop's values.
		if v := lastValue(in.Header, "X-Forwarded-Proto"); v != "" {
			proto = v
		}
		if v := lastValue(in.Header, "X-Forwarded-Host"); v != "" {
			host = v
		}
		// SetXForwarded appends the peer to Out's X-Forwarded-For, which
		// ReverseProxy cleared before Rewrite, so copy the trusted chain
		// back first.
		if prior := in.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			out["X-Forwarded-For"] = slices.Clone(prior)
		}
		pr.SetXForwarded()
	} else if ok {
		out.Set("X-Forwarded-For", peer.String())
	}
	// X-Real-Ip is the client IP as sessiongate computed it, never a value
	// a client sent.
	switch {
	case id != nil && id.clientIP != "":
		out.Set("X-Real-Ip", id.clientIP)
	case ok && !trusted:
		out.Set("X-Real-Ip", peer.String())
	default:
		out.Set("X-Real-Ip", g.proxies.ClientIP(in))
	}
	out.Set("X-Forwarded-Host", host)
	out.Set("X-Forwarded-Proto", proto)
}

// upstreamError responds with 502 when the backend cannot be reached.
func (g *Gateway) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The client went away, so no one reads the response.
		g.log.Debug("client cancelled request", zap.String("path", r.URL.Path))
		w.WriteHeader(499)
		return
	}
	fields := []zap.Field{zap.Error(err), zap.String("method", r.Method), zap.String("path", r.URL.Path)}
	if id, _ := r.Context().Value(identityKey{}).(*identity); id != nil {
		fields = append(fields, zap.String("session_id", id.sessionID), zap.String("user_id", id.claims.UserID))
	}
	g.log.Error("upstream request failed", fields...)
	g.metrics.requests.WithLabelValues(CodeUpstreamUnavailable).Inc()
	writeError(w, http.StatusBadGateway, CodeUpstreamUnavailable, "The backend is unavailable.")
}

// forward sends r to the backend, with id's identity headers when id is
// not nil. outcome labels the request metric.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, id *identity, outcome string) {
	if id != nil {
		r = r.WithContext(context.WithValue(r.Context(), identityKey{}, id))
	}
	g.metrics.requests.WithLabelValues(outcome).Inc()
	g.proxy.ServeHTTP(w, r)
}
