package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// userAgent is a browser-like User-Agent that every load generator sends,
// so that session metadata in Redis has a realistic size.
const userAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"

// wrkScript rotates the Authorization header over a token file given after
// "--". Each wrk thread starts at a different offset so that threads do not
// send the same token at the same moment. done() prints one JSON line that
// runWrk parses; wrk's latencies are in microseconds.
const wrkScript = `
local tokens = {}
local count = 0
local next_index = 0
local thread_number = 0
local user_agent = %q

function setup(thread)
  thread:set("thread_number", thread_number)
  thread_number = thread_number + 1
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      count = count + 1
      tokens[count] = "Bearer " .. line
    end
  end
  next_index = ((thread_number or 0) * 7919) %% count
end

function request()
  next_index = next_index %% count + 1
  return wrk.format("GET", "/api/items", {["Authorization"] = tokens[next_index], ["User-Agent"] = user_agent})
end

function done(summary, latency, requests)
  io.write(string.format('WRKRESULT {"requests":%%d,"duration_us":%%d,"connect_errors":%%d,"read_errors":%%d,"write_errors":%%d,"status_errors":%%d,"timeouts":%%d,"p50_us":%%d,"p99_us":%%d,"max_us":%%d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
`

// wrkResult is one wrk run.
type wrkResult struct {
	Requests      int64 `json:"requests"`
	DurationUS    int64 `json:"duration_us"`
	ConnectErrors int64 `json:"connect_errors"`
	ReadErrors    int64 `json:"read_errors"`
	WriteErrors   int64 `json:"write_errors"`
	StatusErrors  int64 `json:"status_errors"`
	Timeouts      int64 `json:"timeouts"`
	P50US         int64 `json:"p50_us"`
	P99US         int64 `json:"p99_us"`
	MaxUS         int64 `json:"max_us"`
}

// rate returns requests per second.
func (r wrkResult) rate() float64 {
	if r.DurationUS == 0 {
		return 0
	}
	return float64(r.Requests) / (float64(r.DurationUS) / 1e6)
}

// errors returns the sum of every error wrk counts, non-2xx/3xx included.
func (r wrkResult) errors() int64 {
	return r.ConnectErrors + r.ReadErrors + r.WriteErrors + r.StatusErrors + r.Timeouts
}

func writeWrkScript(dir string) (string, error) {
	path := filepath.Join(dir, "rotate-tokens.lua")
	return path, os.WriteFile(path, []byte(fmt.Sprintf(wrkScript, userAgent)), 0o600)
}

// runWrk drives url for d with wrk. The run is bounded twice: by wrk's own
// -d and by a context deadline of d plus 30 seconds.
func runWrk(ctx context.Context, script, url, tokenFile string, threads, connections int, d time.Duration) (wrkResult, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	secs := strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second)))
	cmd := exec.CommandContext(ctx, "wrk",
		"-t", strconv.Itoa(threads), "-c", strconv.Itoa(connections), "-d", secs+"s",
		"--timeout", "5s", "-s", script, url, "--", tokenFile)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return wrkResult{}, fmt.Errorf("run wrk on %s: %w: %s", url, err, strings.TrimSpace(errOut.String()))
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if raw, ok := strings.CutPrefix(line, "WRKRESULT "); ok {
			var r wrkResult
			if err := json.Unmarshal([]byte(raw), &r); err != nil {
				return wrkResult{}, fmt.Errorf("parse wrk result %q: %w", raw, err)
			}
			return r, nil
		}
	}
	return wrkResult{}, fmt.Errorf("wrk printed no result line for %s:\n%s%s", url, out.String(), errOut.String())
}
