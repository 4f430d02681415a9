// Command bench measures what sessiongate costs on the request path, on
// one machine and on loopback only.
//
// It starts a small Go backend, a bare httputil.ReverseProxy with a tuned
// transport (the floor, "bare"), the same proxy with a buffer pool as
// sessiongate has ("bare-pooled"), nginx as a plain reverse proxy when
// installed,
// a redis-server with two sessiongate instances (HS256 tokens and RS256
// tokens), and sessiongate with SESSION_STORE=memory. It drives each with
// wrk, interleaving the targets over several rounds, then runs each at a
// constant rate of half the floor's throughput for tail latency, and
// finally measures memory with many distinct live sessions.
//
// Usage, from the repository root:
//
//	go run ./bench [-rounds 3] [-duration 10s] [-out results.md]
//
// Every child process is stopped when the benchmark ends or is
// interrupted. Subcommands "backend" and "bareproxy" run the two Go
// servers; the benchmark starts them as children of itself.
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

// subcommands are the servers the benchmark runs as its own children.
var subcommands = map[string]func(args []string) error{
	"backend":   runBackend,
	"bareproxy": runBareProxy,
}

func main() {
	if len(os.Args) > 1 {
		if serve, ok := subcommands[os.Args[1]]; ok {
			if err := serve(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				os.Exit(1)
			}
			return
		}
	}

	cfg := parseFlags()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// config holds the command-line settings of one benchmark run.
type config struct {
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	connections int
	threads     int
	tokens      int
	// rateDuration is the length of each constant-rate run; 0 skips them.
	rateDuration time.Duration
	// sessions is the number of live sessions of the memory phase; 0
	// skips it.
	sessions int
	targets  string
	// profile, when not empty, is a file that receives a CPU profile of
	// sessiongate with Redis and HS256, taken in an extra run after the
	// rounds.
	profile string
	out     string
	keep    bool
}

func parseFlags() config {
	var c config
	flag.IntVar(&c.rounds, "rounds", 3, "interleaved rounds over all targets")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "length of each wrk run")
	flag.DurationVar(&c.warmup, "warmup", 3*time.Second, "length of each target's warm-up run, which creates the sessions")
	flag.IntVar(&c.connections, "connections", 64, "concurrent connections of wrk and of the constant-rate generator")
	flag.IntVar(&c.threads, "threads", 2, "wrk threads")
	flag.IntVar(&c.tokens, "tokens", 1000, "distinct tokens, and so sessions, per target")
	flag.DurationVar(&c.rateDuration, "rate-duration", 10*time.Second, "length of each constant-rate run; 0 skips them")
	flag.IntVar(&c.sessions, "sessions", 100000, "live sessions of the memory measurement; 0 skips it")
	flag.StringVar(&c.targets, "targets", "", "comma-separated target names to run (default all): backend,bare,bare-pooled,nginx,sg-redis-hs256,sg-redis-rs256,sg-memory")
	flag.StringVar(&c.profile, "profile", "", "write a CPU profile of sessiongate with Redis and HS256, taken in an extra unmeasured run after the rounds, to this file")
	flag.StringVar(&c.out, "out", "", "also write the report to this file")
	flag.BoolVar(&c.keep, "keep", false, "keep the temporary directory with logs, configs and tokens")
	flag.Parse()
	return c
}
