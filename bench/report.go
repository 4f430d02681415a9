package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// machine describes where the benchmark ran.
type machine struct {
	date       string
	cpus       int
	cpuModel   string
	kernel     string
	goVersion  string
	redis      string
	nginx      string
	wrk        string
	loadBefore string
	loadAfter  string
}

func describeMachine() machine {
	m := machine{
		date:      time.Now().UTC().Format("2006-01-02 15:04 MST"),
		cpus:      runtime.NumCPU(),
		goVersion: runtime.Version(),
		kernel:    readTrimmed("/proc/sys/kernel/osrelease"),
		redis:     firstLine(commandOutput("redis-server", "--version")),
		nginx:     firstLine(commandOutput("nginx", "-v")),
		wrk:       firstLine(commandOutput("wrk", "-v")),
	}
	// wrk -v prints its version and a copyright notice on one line.
	m.wrk, _, _ = strings.Cut(m.wrk, " Copyright")
	for _, line := range strings.Split(readTrimmed("/proc/cpuinfo"), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			m.cpuModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
			break
		}
	}
	return m
}

func readTrimmed(path string) string {
	raw, _ := os.ReadFile(path)
	return strings.TrimSpace(string(raw))
}

// commandOutput runs a version command and returns what it printed on
// either stream; wrk -v exits 1 after printing, so the status is ignored.
func commandOutput(name string, args ...string) string {
	if _, err := exec.LookPath(name); err != nil {
		return "not installed"
	}
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run()
	return strings.TrimSpace(out.String())
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

func loadAverage() string {
	fields := strings.Fields(readTrimmed("/proc/loadavg"))
	if len(fields) < 3 {
		return "unknown"
	}
	return strings.Join(fields[:3], " ")
}

// renderReport formats the results as Markdown.
func renderReport(cfg config, res *results, notes []string) string {
	var b strings.Builder
	m := res.machine
	fmt.Fprintf(&b, "## Run of %s\n\n", m.date)
	fmt.Fprintf(&b, "- machine: %d CPUs, %s, kernel %s\n", m.cpus, m.cpuModel, m.kernel)
	fmt.Fprintf(&b, "- %s; %s; %s; %s\n", m.goVersion, m.redis, m.nginx, m.wrk)
	fmt.Fprintf(&b, "- command: `go run ./bench %s`\n", strings.Join(os.Args[1:], " "))
	fmt.Fprintf(&b, "- load: wrk -t%d -c%d, %s per run, %d interleaved rounds, %d distinct tokens per target\n",
		cfg.threads, cfg.connections, cfg.duration, cfg.rounds, cfg.tokens)
	fmt.Fprintf(&b, "- load average (1, 5, 15 min): %s before the rounds, %s at the end\n\n", m.loadBefore, m.loadAfter)

	writeThroughput(&b, res)
	writeConstantRate(&b, res)
	writeMemory(&b, res)
	if len(notes) > 0 {
		b.WriteString("Notes:\n\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func writeThroughput(b *strings.Builder, res *results) {
	floor := medianOf(res.samples["bare"], func(s sample) float64 { return s.wrk.rate() })
	floorCPU := medianOf(res.samples["bare"], func(s sample) float64 { return perRequest(s.cpu, s.wrk.Requests) })

	b.WriteString("### Throughput (wrk, closed loop)\n\n")
	b.WriteString("| target | req/s median | min–max | × floor | p50 ms | p99 ms | proxy CPU µs/req | × floor CPU | Redis CPU µs/req | Redis script µs/req | Redis commands/req | Redis reads/req | errors |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, name := range res.order {
		ss := res.samples[name]
		if len(ss) == 0 {
			continue
		}
		rate := medianOf(ss, func(s sample) float64 { return s.wrk.rate() })
		lo, hi := rangeOf(ss, func(s sample) float64 { return s.wrk.rate() })
		cpu := medianOf(ss, func(s sample) float64 { return perRequest(s.cpu, s.wrk.Requests) })
		var errs, reqs, trips, reads int64
		var redisCPU, script time.Duration
		usesRedis := false
		for _, s := range ss {
			errs += s.wrk.errors()
			reqs += s.wrk.Requests
			trips += s.roundTrips
			reads += s.redisReads
			redisCPU += s.redisCPU
			script += s.scriptTime
			usesRedis = usesRedis || s.roundTrips > 0
		}
		redisCol, scriptCol, tripsCol, readsCol := "—", "—", "—", "—"
		if usesRedis {
			redisCol = fmt.Sprintf("%.1f", perRequest(redisCPU, reqs))
			scriptCol = fmt.Sprintf("%.1f", perRequest(script, reqs))
			tripsCol = fmt.Sprintf("%.3f", float64(trips)/float64(reqs))
			readsCol = fmt.Sprintf("%.3f", float64(reads)/float64(reqs))
		}
		cpuRatio := "—"
		if name != "backend" && floorCPU > 0 {
			cpuRatio = fmt.Sprintf("%.2f", cpu/floorCPU)
		}
		if name == "backend" {
			cpu = 0
		}
		cpuCol := "—"
		if cpu > 0 {
			cpuCol = fmt.Sprintf("%.1f", cpu)
		}
		fmt.Fprintf(b, "| %s | %.0f | %.0f–%.0f | %s | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %d |\n",
			name, rate, lo, hi, ratio(rate, floor), ms(medianOf(ss, func(s sample) float64 { return float64(s.wrk.P50US) })),
			ms(medianOf(ss, func(s sample) float64 { return float64(s.wrk.P99US) })), cpuCol, cpuRatio, redisCol, scriptCol, tripsCol, readsCol, errs)
	}
	writeRatios(b, res)
	b.WriteString("\nThe backend row is the backend's own throughput; its CPU column is left empty because no proxy runs. " +
		"p50 and p99 are medians over the rounds of wrk's per-run percentiles. Proxy CPU is user plus system time " +
		"of the proxy's processes (nginx: master and workers) from /proc, divided by requests. " +
		"Redis commands are those clients sent (INFO commandstats, less commands called inside scripts and the benchmark's INFO); " +
		"without pipelining each is one round trip. Redis reads are redis-server's read system calls from /proc/PID/io, " +
		"one per client round trip, whatever number of pipelined commands it carried. " +
		"Redis script time is commandstats usec of EVALSHA and EVAL, wall time inside Redis.\n\n")
}

// writeRatios compares every proxy with both floors: "bare", whose
// transport is tuned as sessiongate's is, and "bare-pooled", which also
// pools copy buffers as sessiongate does.
func writeRatios(b *strings.Builder, res *results) {
	rate := func(s sample) float64 { return s.wrk.rate() }
	cpu := func(s sample) float64 { return perRequest(s.cpu, s.wrk.Requests) }
	floors := []string{"bare", "bare-pooled"}
	b.WriteString("\n| target | req/s ÷ bare | req/s ÷ bare-pooled | CPU/req ÷ bare | CPU/req ÷ bare-pooled |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: |\n")
	for _, name := range res.order {
		ss := res.samples[name]
		if len(ss) == 0 || name == "backend" {
			continue
		}
		cols := make([]string, 0, 4)
		for _, f := range []func(sample) float64{rate, cpu} {
			for _, floor := range floors {
				cols = append(cols, ratio(medianOf(ss, f), medianOf(res.samples[floor], f)))
			}
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", name, cols[0], cols[1], cols[2], cols[3])
	}
}

func writeConstantRate(b *strings.Builder, res *results) {
	if len(res.openLoop) == 0 {
		return
	}
	msOf := func(rs []openLoopResult, f func(openLoopResult) time.Duration) float64 {
		v := make([]float64, 0, len(rs))
		for _, r := range rs {
			v = append(v, f(r).Seconds()*1000)
		}
		return median(v)
	}
	p99 := func(r openLoopResult) time.Duration { return r.P99 }
	floor := msOf(res.openLoop["bare"], p99)

	fmt.Fprintf(b, "### Constant rate (%.0f req/s, half the floor's median)\n\n", res.rate)
	b.WriteString("| target | p50 ms | p99 ms | p99 min–max ms | p99.9 ms | max ms | p99 − floor p99 ms | ok | failed | unsent |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, name := range res.order {
		rs := res.openLoop[name]
		if len(rs) == 0 {
			continue
		}
		var ok, failed, unsent int
		var worst time.Duration
		lo, hi := math.Inf(1), 0.0
		for _, r := range rs {
			ok, failed, unsent = ok+r.OK, failed+r.Failed, unsent+r.Unsent
			worst = max(worst, r.Max)
			lo, hi = min(lo, r.P99.Seconds()*1000), max(hi, r.P99.Seconds()*1000)
		}
		med := msOf(rs, p99)
		fmt.Fprintf(b, "| %s | %.2f | %.2f | %.2f–%.2f | %.2f | %.2f | %+.2f | %d | %d | %d |\n", name,
			msOf(rs, func(r openLoopResult) time.Duration { return r.P50 }), med, lo, hi,
			msOf(rs, func(r openLoopResult) time.Duration { return r.P999 }), worst.Seconds()*1000, med-floor, ok, failed, unsent)
	}
	b.WriteString("\nPercentiles are medians over the rounds; max is the largest of any round. " +
		"Latency runs from each request's scheduled time, so queueing behind a stall counts. " +
		"The generator runs in the benchmark process on the same CPUs as the proxy.\n\n")
}

func writeMemory(b *strings.Builder, res *results) {
	if len(res.memory) == 0 {
		return
	}
	b.WriteString("### Memory with many live sessions\n\n")
	b.WriteString("| target | live sessions | failed | RSS after creation MiB | RSS max under load MiB | req/s under load | Redis used_memory growth MiB | Redis bytes/session | Redis keys |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, m := range res.memory {
		redisGrowth, perSession, keys := "—", "—", "—"
		if m.redisKeys > 0 {
			redisGrowth = fmt.Sprintf("%.1f", float64(m.redisBytes)/(1<<20))
			perSession = fmt.Sprintf("%.0f", float64(m.redisBytes)/float64(max(1, m.sessions)))
			keys = fmt.Sprintf("%d", m.redisKeys)
		}
		fmt.Fprintf(b, "| %s | %d | %d | %.1f | %.1f | %.0f | %s | %s | %s |\n", m.target, m.sessions, m.failed,
			float64(m.rssIdle)/(1<<20), float64(m.rssMax)/(1<<20), m.loadRate, redisGrowth, perSession, keys)
	}
	b.WriteString("\n")
	if len(res.keySizes) > 0 {
		b.WriteString("| Redis key | keys sampled | MEMORY USAGE bytes, mean |\n| --- | ---: | ---: |\n")
		for _, k := range res.keySizes {
			fmt.Fprintf(b, "| %s | %d | %.0f |\n", k.kind, k.sampled, k.bytes)
		}
		b.WriteString("\nMEMORY USAGE counts a key's name and value but not its entry in the expiry table, so the sum is below the used_memory figure.\n\n")
	}
}

func medianOf(ss []sample, f func(sample) float64) float64 {
	v := make([]float64, 0, len(ss))
	for _, s := range ss {
		v = append(v, f(s))
	}
	return median(v)
}

func rangeOf(ss []sample, f func(sample) float64) (lo, hi float64) {
	for i, s := range ss {
		x := f(s)
		if i == 0 || x < lo {
			lo = x
		}
		if i == 0 || x > hi {
			hi = x
		}
	}
	return lo, hi
}

func ratio(x, floor float64) string {
	if floor == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", x/floor)
}

func ms(us float64) float64 { return us / 1000 }
