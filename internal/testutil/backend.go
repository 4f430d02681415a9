package testutil

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Received is one request as the backend saw it.
type Received struct {
	Method   string
	Path     string
	Header   http.Header
	BodySize int64
}

// Backend is a loopback HTTP server that records every request. Routes:
// /slow sleeps for the "d" query duration, /sse streams three events a
// tenth of a second apart, /upload counts the body, anything else returns
// 200 with "ok".
type Backend struct {
	URL string

	mu       sync.Mutex
	received []Received
	srv      *http.Server
	ln       net.Listener
	addr     string
}

// StartBackend starts a Backend and stops it when the test ends.
func StartBackend(t testing.TB) *Backend {
	t.Helper()
	b := &Backend{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen backend: %v", err)
	}
	b.addr = ln.Addr().String()
	b.URL = "http://" + b.addr
	b.serve(ln)
	t.Cleanup(b.Stop)
	return b
}

func (b *Backend) serve(ln net.Listener) {
	b.ln = ln
	b.srv = &http.Server{Handler: http.HandlerFunc(b.handle), ReadHeaderTimeout: 5 * time.Second}
	go b.srv.Serve(ln)
}

func (b *Backend) handle(w http.ResponseWriter, r *http.Request) {
	n, _ := io.Copy(io.Discard, r.Body)
	b.mu.Lock()
	b.received = append(b.received, Received{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), BodySize: n})
	b.mu.Unlock()

	switch r.URL.Path {
	case "/slow":
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		time.Sleep(d)
		fmt.Fprint(w, "slow done")
	case "/sse":
		w.Header().Set("Content-Type", "text/event-stream")
		flusher := w.(http.Flusher)
		for i := range 3 {
			fmt.Fprintf(w, "data: event %d\n\n", i)
			flusher.Flush()
			time.Sleep(100 * time.Millisecond)
		}
	case "/upload":
		fmt.Fprintf(w, "%d", n)
	default:
		fmt.Fprint(w, "ok")
	}
}

// Received returns a copy of every request recorded so far.
func (b *Backend) Received() []Received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Received(nil), b.received...)
}

// Last returns the last request recorded; it fails the test when there is
// none.
func (b *Backend) Last(t testing.TB) Received {
	t.Helper()
	all := b.Received()
	if len(all) == 0 {
		t.Fatal("backend received no request")
	}
	return all[len(all)-1]
}

// Reset clears the recorded requests.
func (b *Backend) Reset() {
	b.mu.Lock()
	b.received = nil
	b.mu.Unlock()
}

// Stop closes the server; connections to its address are then refused.
func (b *Backend) Stop() {
	if b.srv != nil {
		b.srv.Close()
		b.srv = nil
	}
}
