// Command sweep measures one cleanup sweep over a large keyspace: how long
// sessions.RedisStore.Sweep takes, how much it slows Redis for other
// clients meanwhile, and how much memory the Go process uses for it.
//
// It starts its own redis-server on a free loopback port and loads
// -sessions sessions in the key layout that the access script writes: a
// session hash, a metadata hash and an index entry each, all with TTLs. It
// plants junk for the sweep to remove and runs one sweep while a probe
// sends PING every 10 ms. Then it prints the figures and stops its
// redis-server.
//
// Usage, from the repository root:
//
//	go run ./bench/sweep [-sessions 1000000] [-per-user 2] [-junk 1000] [-timeout 10m]
//
// The whole run, loading included, is aborted after -timeout.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	var cfg config
	flag.IntVar(&cfg.sessions, "sessions", 1_000_000, "number of live sessions to load")
	flag.IntVar(&cfg.perUser, "per-user", 2, "sessions per user, so users = sessions / per-user")
	flag.IntVar(&cfg.junk, "junk", 1000, "number of each kind of junk: session keys without TTL, orphan metadata keys, stale index entries")
	flag.DurationVar(&cfg.timeout, "timeout", 10*time.Minute, "abort the whole run after this long")
	flag.DurationVar(&cfg.probeInterval, "probe-interval", 10*time.Millisecond, "time between two PINGs of the latency probe")
	flag.Parse()
	if cfg.sessions < 1 || cfg.perUser < 1 || cfg.junk < 0 {
		fmt.Fprintln(os.Stderr, "sweep: -sessions and -per-user must be at least 1, -junk at least 0")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()

	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "sweep:", err)
		os.Exit(1)
	}
}

// config is the benchmark's command line.
type config struct {
	sessions      int
	perUser       int
	junk          int
	timeout       time.Duration
	probeInterval time.Duration
}
