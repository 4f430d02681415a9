package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"
)

// backendBody is the benchmark backend's response body, a small JSON
// document like a short API response.
var backendBody = []byte(`{"status":"ok","items":[1,2,3],"message":"hello from the benchmark backend"}` + "\n")

// runBackend serves the benchmark backend on -addr until killed. It drains
// the request body and responds 200 with backendBody.
func runBackend(args []string) error {
	fs := flag.NewFlagSet("backend", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "loopback address to listen on")
	fs.Parse(args)

	length := strconv.Itoa(len(backendBody))
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{length}
		w.Write(backendBody)
	})
	return serveLoopback(*addr, handler)
}

// runBareProxy serves the floor: httputil.ReverseProxy with the same
// transport settings as sessiongate (many idle connections to the one
// backend host) and no session logic. With -buffer-pool it also reuses its
// copy buffers, as sessiongate does.
func runBareProxy(args []string) error {
	fs := flag.NewFlagSet("bareproxy", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "loopback address to listen on")
	upstream := fs.String("upstream", "", "backend URL")
	pooled := fs.Bool("buffer-pool", false, "reuse 32 KiB copy buffers instead of allocating one per response")
	fs.Parse(args)

	target, err := url.Parse(*upstream)
	if err != nil || target.Host == "" {
		return fmt.Errorf("invalid -upstream %q: want a URL such as http://127.0.0.1:8000", *upstream)
	}
	transport := &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport: transport,
	}
	if *pooled {
		proxy.BufferPool = &bufferPool{}
	}
	return serveLoopback(*addr, proxy)
}

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

// serveLoopback rejects any address that is not on loopback, so that a
// mistyped flag cannot expose a benchmark server.
func serveLoopback(addr string, h http.Handler) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid -addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("invalid -addr %q: the benchmark listens on loopback only, use 127.0.0.1:PORT", addr)
	}
	srv := &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	fmt.Fprintln(os.Stderr, "listening on", addr)
	return srv.ListenAndServe()
}
