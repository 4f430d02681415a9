package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// openLoopResult is one constant-rate run. Latencies are measured from the
// time each request was scheduled, not from when it was sent, so a stall
// in the target shows up in every request scheduled during it.
type openLoopResult struct {
	Rate      float64
	Scheduled int
	OK        int
	Failed    int
	// Unsent counts requests the deadline stopped before they were sent.
	Unsent int
	P50    time.Duration
	P99    time.Duration
	P999   time.Duration
	Max    time.Duration
}

// runOpenLoop sends rate requests per second to url for d over at most
// connections concurrent connections, rotating tokens. Request i is due at
// start + i/rate. A worker that is free early sleeps until then. A request
// that finds every connection busy waits, and its latency includes the
// wait. The first warm-up of the schedule dials connections and is left
// out of the figures. The whole run stops at d plus ten seconds.
func runOpenLoop(ctx context.Context, url string, tokens []string, rate float64, d, warmup time.Duration, connections int) (openLoopResult, error) {
	if rate <= 0 || len(tokens) == 0 {
		return openLoopResult{}, fmt.Errorf("open-loop run needs a positive rate and tokens, got rate %.0f and %d tokens", rate, len(tokens))
	}
	total := int(rate * (warmup + d).Seconds())
	skip := int(rate * warmup.Seconds())
	interval := time.Duration(float64(time.Second) / rate)

	ctx, cancel := context.WithTimeout(ctx, warmup+d+10*time.Second)
	defer cancel()
	host := strings.TrimPrefix(url, "http://")
	addr, path, _ := strings.Cut(host, "/")
	path = "/" + path
	requests := make([][]byte, len(tokens))
	for i, token := range tokens {
		requests[i] = []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer " + token +
			"\r\nUser-Agent: " + userAgent + "\r\n\r\n")
	}

	latencies := make([]time.Duration, total)
	outcome := make([]int8, total) // 0 unsent, 1 ok, 2 failed
	var next atomic.Int64
	start := time.Now().Add(50 * time.Millisecond)

	var wg sync.WaitGroup
	for range connections {
		wg.Go(func() {
			var conn *rawConn
			defer func() { conn.close() }()
			for {
				i := int(next.Add(1) - 1)
				if i >= total || ctx.Err() != nil {
					return
				}
				due := start.Add(time.Duration(i) * interval)
				if wait := time.Until(due); wait > 0 {
					select {
					case <-time.After(wait):
					case <-ctx.Done():
						return
					}
				}
				if conn == nil {
					conn = dialRaw(addr)
				}
				ok, reusable := conn.roundTrip(requests[i%len(requests)])
				if !ok && !reusable && !conn.fresh {
					// The server may have closed an idle keep-alive
					// connection; net/http retries such a request once too.
					conn.close()
					conn = dialRaw(addr)
					ok, reusable = conn.roundTrip(requests[i%len(requests)])
				}
				latencies[i] = time.Since(due)
				outcome[i] = 2
				if ok {
					outcome[i] = 1
				}
				if !reusable {
					conn.close()
					conn = nil
				}
			}
		})
	}
	wg.Wait()

	res := openLoopResult{Rate: rate, Scheduled: total - skip}
	measured := make([]time.Duration, 0, total-skip)
	for i := skip; i < total; i++ {
		switch outcome[i] {
		case 0:
			res.Unsent++
		case 1:
			res.OK++
			measured = append(measured, latencies[i])
		default:
			res.Failed++
		}
	}
	if len(measured) == 0 {
		return res, fmt.Errorf("open-loop run on %s: no request succeeded", url)
	}
	slices.Sort(measured)
	res.P50 = percentile(measured, 50)
	res.P99 = percentile(measured, 99)
	res.P999 = percentile(measured, 99.9)
	res.Max = measured[len(measured)-1]
	return res, nil
}

func sendOne(ctx context.Context, client *http.Client, url, token string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("User-Agent", userAgent)
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// percentile returns the p-th percentile of sorted by the nearest-rank
// method.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.5) - 1
	rank = min(max(rank, 0), len(sorted)-1)
	return sorted[rank]
}

// rawConn is a minimal HTTP/1.1 keep-alive client for the constant-rate
// run. It sends prepared request bytes and reads a response with a
// Content-Length body, which costs the generator far less CPU than
// net/http does, so that less of the shared CPUs go to the load itself.
type rawConn struct {
	conn   net.Conn
	reader *bufio.Reader
	// fresh is true until the first response has been read.
	fresh bool
}

func dialRaw(addr string) *rawConn {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return &rawConn{fresh: true}
	}
	return &rawConn{conn: conn, reader: bufio.NewReaderSize(conn, 16<<10), fresh: true}
}

func (c *rawConn) close() {
	if c != nil && c.conn != nil {
		c.conn.Close()
	}
}

// roundTrip sends req and reads the response. ok reports status 200, and
// reusable reports whether the connection can carry the next request: not
// after an error or a "Connection: close" response. A response without
// Content-Length counts as failed.
func (c *rawConn) roundTrip(req []byte) (ok, reusable bool) {
	if c.conn == nil {
		return false, false
	}
	_ = c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.conn.Write(req); err != nil {
		return false, false
	}

	status, err := c.reader.ReadSlice('\n')
	if err != nil {
		return false, false
	}
	c.fresh = false
	ok = bytes.HasPrefix(status, []byte("HTTP/1.1 200 "))
	length, keepAlive := -1, true
	for {
		line, err := c.reader.ReadSlice('\n')
		if err != nil {
			return false, false
		}
		if len(line) <= 2 {
			break
		}
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			length, _ = strconv.Atoi(string(value))
		case bytes.EqualFold(name, []byte("Connection")) && bytes.EqualFold(value, []byte("close")):
			keepAlive = false
		}
	}

	if length < 0 {
		return false, false
	}
	if _, err := c.reader.Discard(length); err != nil {
		return false, false
	}
	return ok, keepAlive
}
