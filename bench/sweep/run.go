package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/sessiongate/configs"
	"github.com/sessiongate/sessiongate/sessions"
)

// sessionDB is the REDIS_SESSION_DB default, used here as in production.
const sessionDB = 2

func run(ctx context.Context, cfg config) error {
	srv, err := startRedis(ctx)
	if err != nil {
		return err
	}
	defer srv.stop()
	client := redis.NewClient(&redis.Options{Addr: srv.addr, DB: sessionDB, DisableIdentity: true, PoolSize: loadWorkers + 2})
	defer client.Close()
	users := (cfg.sessions + cfg.perUser - 1) / cfg.perUser

	// Load the keyspace.
	fmt.Printf("loading %d sessions of %d users and %d junk keys of each kind into redis %s on %s\n",
		cfg.sessions, users, cfg.junk, serverVersion(ctx, client), srv.addr)
	loadStart := time.Now()
	if err := loadSessions(ctx, client, cfg.sessions, cfg.perUser); err != nil {
		return err
	}
	if err := plantJunk(ctx, client, cfg.junk, users); err != nil {
		return err
	}
	keys, err := client.DBSize(ctx).Result()
	if err != nil {
		return fmt.Errorf("DBSIZE: %w", err)
	}
	fmt.Printf("loaded %d keys in %v; redis used_memory %s\n", keys, time.Since(loadStart).Round(time.Millisecond),
		infoField(ctx, client, "memory", "used_memory_human"))

	// The store under test, with the client set-up that sessiongate uses.
	storeClient, err := sessions.NewRedisClient(configs.Config{
		RedisURL:     fmt.Sprintf("redis://%s/%d", srv.addr, sessionDB),
		RedisTimeout: 250 * time.Millisecond,
	})
	if err != nil {
		return err
	}
	store := sessions.NewRedisStore(storeClient, prefix, sessions.Policy{Lifetime: lifetime})
	defer store.Close()

	// Release what loading allocated, so that the peaks below belong to
	// the sweep.
	runtime.GC()
	debug.FreeOSMemory()
	peakReset := resetPeakRSS()
	baseRSS, _ := procStatusBytes("VmRSS")

	idle, _ := measure(ctx, client, cfg.probeInterval, func() {
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	})

	var report sessions.SweepReport
	var sweepErr error
	during, peaks := measure(ctx, client, cfg.probeInterval, func() {
		report, sweepErr = store.Sweep(ctx, time.Now())
	})
	if sweepErr != nil {
		return fmt.Errorf("sweep: %w", sweepErr)
	}
	hwm, hwmOK := procStatusBytes("VmHWM")

	printResults(cfg, users, keys, report, idle, during, peaks, baseRSS, hwm, hwmOK && peakReset)
	if report.Removed[sessions.RemovedNoTTL] != cfg.junk || report.Removed[sessions.RemovedOrphanMetadata] != cfg.junk ||
		report.Removed[sessions.RemovedStaleIndexEntry] != cfg.junk || report.Sessions != cfg.sessions {
		return fmt.Errorf("sweep report %+v, want %d of each junk kind removed and %d sessions kept", report, cfg.junk, cfg.sessions)
	}
	return nil
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func printResults(cfg config, users int, keys int64, report sessions.SweepReport, idle, during *latencyProbe,
	peaks memoryPeaks, baseRSS, hwm int64, hwmValid bool) {
	fmt.Println()
	fmt.Println("| what | figure |")
	fmt.Println("| --- | --- |")
	fmt.Printf("| keyspace | %d sessions of %d users, %d keys in all, %d junk keys or entries of each kind |\n", cfg.sessions, users, keys, cfg.junk)
	fmt.Printf("| sweep duration | %v |\n", report.Duration.Round(time.Millisecond))
	fmt.Printf("| keys examined per second | %.0f |\n", float64(report.Found)/report.Duration.Seconds())
	fmt.Printf("| report | found %d, sessions %d, users %d, removed no_ttl %d, orphan_metadata %d, stale_index_entry %d, remaining %d |\n",
		report.Found, report.Sessions, report.Users, report.Removed[sessions.RemovedNoTTL],
		report.Removed[sessions.RemovedOrphanMetadata], report.Removed[sessions.RemovedStaleIndexEntry], report.Remaining)
	fmt.Printf("| PING before the sweep (2 s, %d samples) | p50 %v, p99 %v, max %v, errors %d |\n",
		len(idle.samples), idle.percentile(0.50), idle.percentile(0.99), idle.percentile(1), idle.errors)
	fmt.Printf("| PING during the sweep (%d samples) | p50 %v, p99 %v, max %v, errors %d |\n",
		len(during.samples), during.percentile(0.50), during.percentile(0.99), during.percentile(1), during.errors)
	fmt.Printf("| Go heap during the sweep (%d samples) | peak HeapAlloc %s, peak HeapSys %s |\n",
		peaks.samples, mib(int64(peaks.heapAlloc)), mib(int64(peaks.heapSys)))
	peak := "unavailable"
	if hwmValid {
		peak = mib(hwm)
	}
	fmt.Printf("| process RSS | %s before, sampled peak %s, VmHWM since reset %s |\n", mib(baseRSS), mib(peaks.rss), peak)
	fmt.Println()
	fmt.Printf("machine: %d CPUs (%s), %s, %s, %s\n", runtime.NumCPU(), cpuModel(), runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH,
		time.Now().UTC().Format(time.RFC3339))
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	raw, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
