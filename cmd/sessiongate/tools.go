package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sessiongate/sessiongate/sessions"
)

// cleanup runs one sweep and prints its report as JSON on stdout. It exits
// 1 when the store cannot be reached.
func cleanup() int {
	cfg, ok := loadConfig(storeVariable)
	if !ok {
		return exitBadUsage
	}
	if cfg.SessionStore == "memory" {
		fmt.Fprintln(os.Stderr, "sessiongate cleanup: SESSION_STORE=memory keeps sessions inside the serving process; there is nothing to sweep from here")
		return exitBadUsage
	}
	log, err := newLogger(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sessiongate:", err)
		return exitBadUsage
	}
	defer log.Sync()

	store, err := sessions.OpenStore(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sessiongate cleanup:", err)
		return exitFailure
	}
	defer store.Close()

	// SIGINT or SIGTERM cancels the sweep instead of killing the process,
	// so that Sweep still releases its lock. A lock left behind would make
	// every replica skip its sweeps until the lock's TTL ran out.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	pingCtx, cancelPing := context.WithTimeout(ctx, 5*time.Second)
	defer cancelPing()
	if err := store.Ping(pingCtx); err != nil {
		fmt.Fprintln(os.Stderr, "sessiongate cleanup: cannot reach Redis:", err)
		return exitFailure
	}

	report, err := store.Sweep(ctx, time.Now())
	if err != nil && ctx.Err() != nil {
		fmt.Fprintf(os.Stderr, "sessiongate cleanup: sweep stopped after %d keys: %v\n", report.Found, context.Cause(ctx))
		return exitFailure
	}
	sessions.LogSweep(log.Named("sweep"), report, err)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sessiongate cleanup:", err)
		return exitFailure
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(report)
	if report.Skipped {
		fmt.Fprintln(os.Stderr, "sessiongate cleanup: another process is sweeping; nothing done")
	}
	return exitOK
}

// storeVariable reports whether a variable configures the store or logging,
// the only settings a sweep uses.
func storeVariable(variable string) bool {
	for _, prefix := range []string{"REDIS_", "SESSION_", "LOG_"} {
		if strings.HasPrefix(variable, prefix) {
			return true
		}
	}
	return false
}

// healthcheck probes /healthz on ADMIN_ADDR, for container health checks
// in images without curl.
func healthcheck() int {
	addr := os.Getenv("ADMIN_ADDR")
	if addr == "" {
		addr = "127.0.0.1:9090"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sessiongate healthcheck: ADMIN_ADDR=%q: want host:port\n", addr)
		return exitBadUsage
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
	if err != nil {
		fmt.Fprintln(os.Stderr, "sessiongate healthcheck:", err)
		return exitFailure
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "sessiongate healthcheck: /healthz answered %s\n", resp.Status)
		return exitFailure
	}
	return exitOK
}
