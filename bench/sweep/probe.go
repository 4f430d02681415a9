package main

import (
	"context"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// latencyProbe holds the round-trip times of PINGs sent on a connection of
// their own, which is the latency any other Redis client gets meanwhile.
type latencyProbe struct {
	samples []time.Duration
	errors  int
}

// runProbe pings until ctx is done. A PING that takes longer than a second
// counts as an error, not as a sample.
func runProbe(ctx context.Context, c *redis.Client, interval time.Duration) *latencyProbe {
	p := &latencyProbe{}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		pingCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		start := time.Now()
		err := c.Ping(pingCtx).Err()
		elapsed := time.Since(start)
		cancel()
		if err != nil {
			p.errors++
		} else {
			p.samples = append(p.samples, elapsed)
		}
		select {
		case <-ctx.Done():
			return p
		case <-ticker.C:
		}
	}
}

// percentile returns the q-quantile (0..1) of the samples by the
// nearest-rank method, or 0 when there are none.
func (p *latencyProbe) percentile(q float64) time.Duration {
	if len(p.samples) == 0 {
		return 0
	}
	sorted := slices.Clone(p.samples)
	slices.Sort(sorted)
	rank := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// memoryPeaks holds the highest values that sampleMemory read.
type memoryPeaks struct {
	heapAlloc uint64 // bytes of live and not yet collected heap objects
	heapSys   uint64 // bytes of heap memory obtained from the OS
	rss       int64  // bytes, VmRSS from /proc/self/status
	samples   int
}

// sampleMemory records the Go heap and the process RSS every interval
// until ctx is done.
func sampleMemory(ctx context.Context, interval time.Duration) memoryPeaks {
	var peaks memoryPeaks
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peaks.heapAlloc = max(peaks.heapAlloc, ms.HeapAlloc)
		peaks.heapSys = max(peaks.heapSys, ms.HeapSys)
		if rss, ok := procStatusBytes("VmRSS"); ok {
			peaks.rss = max(peaks.rss, rss)
		}
		peaks.samples++
		select {
		case <-ctx.Done():
			return peaks
		case <-ticker.C:
		}
	}
}

// procStatusBytes reads a "kB" field of /proc/self/status, such as VmRSS
// or VmHWM, in bytes.
func procStatusBytes(field string) (int64, bool) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(raw), "\n") {
		value, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, false
		}
		return kb << 10, true
	}
	return 0, false
}

// resetPeakRSS resets VmHWM to the current RSS by writing 5 to
// /proc/self/clear_refs (Linux 4.0 and later), so that the peak read after
// the sweep excludes the loading phase. It returns false when the write
// fails.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// measure runs fn while a latency probe and a memory sampler run, and
// returns their results once fn has returned.
func measure(ctx context.Context, c *redis.Client, probeInterval time.Duration, fn func()) (*latencyProbe, memoryPeaks) {
	sideCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var probe *latencyProbe
	var peaks memoryPeaks
	wg.Go(func() { probe = runProbe(sideCtx, c, probeInterval) })
	wg.Go(func() { peaks = sampleMemory(sideCtx, 20*time.Millisecond) })
	fn()
	stop()
	wg.Wait()
	return probe, peaks
}
