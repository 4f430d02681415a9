package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"
)

// sample is one measured wrk run of one target.
type sample struct {
	round      int
	wrk        wrkResult
	cpu        time.Duration
	redisCPU   time.Duration
	roundTrips int64
	// scriptTime is Redis's own time inside EVALSHA and EVAL.
	scriptTime time.Duration
	// redisReads counts redis-server's read system calls.
	redisReads int64
}

// results collects every figure of a run for the report.
type results struct {
	machine  machine
	samples  map[string][]sample
	order    []string
	rate     float64
	openLoop map[string][]openLoopResult
	memory   []memoryResult
	keySizes []keySize
}

func run(ctx context.Context, cfg config) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk is not installed; install it (apt-get install wrk) and run again")
	}
	if _, err := os.Stat(filepath.Join("cmd", "sessiongate")); err != nil {
		return errors.New("run the benchmark from the repository root: go run ./bench")
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	dir, err := os.MkdirTemp("", "sessiongate-bench-")
	if err != nil {
		return fmt.Errorf("create temporary directory: %w", err)
	}
	if cfg.keep {
		fmt.Fprintln(os.Stderr, "keeping logs, configs and tokens in", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	b := &bench{cfg: cfg, dir: dir, self: self}
	defer b.stopAll()

	res := &results{machine: describeMachine(), samples: map[string][]sample{}, openLoop: map[string][]openLoopResult{}}
	if err := b.setUp(ctx); err != nil {
		return err
	}
	if err := b.runRounds(ctx, res); err != nil {
		return err
	}
	if err := b.runConstantRate(ctx, res); err != nil {
		return err
	}
	if err := b.runMemory(ctx, res); err != nil {
		return err
	}
	res.machine.loadAfter = loadAverage()

	report := renderReport(cfg, res, b.notes)
	fmt.Print(report)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(report), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return nil
}

// wanted reports whether the -targets flag selects name.
func (b *bench) wanted(name string) bool {
	if b.cfg.targets == "" {
		return true
	}
	return slices.Contains(strings.Split(b.cfg.targets, ","), name)
}

// setUp builds sessiongate, makes keys and tokens and starts every target.
func (b *bench) setUp(ctx context.Context) error {
	bin := filepath.Join(b.dir, "sessiongate")
	fmt.Fprintln(os.Stderr, "building sessiongate")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sessiongate")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build sessiongate: %w", err)
	}

	fmt.Fprintln(os.Stderr, "generating keys and tokens")
	keys, err := newKeys(b.dir)
	if err != nil {
		return err
	}
	b.keys = keys
	hsFile := filepath.Join(b.dir, "tokens-hs256.txt")
	rsFile := filepath.Join(b.dir, "tokens-rs256.txt")
	memFile := filepath.Join(b.dir, "tokens-memory-store.txt")
	if err := writeTokens(hsFile, b.cfg.tokens, "hs", jwt.SigningMethodHS256, []byte(keys.secret)); err != nil {
		return err
	}
	if err := writeTokens(rsFile, b.cfg.tokens, "rs", jwt.SigningMethodRS256, keys.rsa); err != nil {
		return err
	}
	if err := writeTokens(memFile, b.cfg.tokens, "mem", jwt.SigningMethodHS256, []byte(keys.secret)); err != nil {
		return err
	}
	if b.script, err = writeWrkScript(b.dir); err != nil {
		return fmt.Errorf("write wrk script: %w", err)
	}

	fmt.Fprintln(os.Stderr, "starting targets")
	if err := b.startBackend(hsFile); err != nil {
		return err
	}
	if err := b.startBareProxy("bare", hsFile, false); err != nil {
		return err
	}
	if err := b.startBareProxy("bare-pooled", hsFile, true); err != nil {
		return err
	}
	if err := b.startNginx(hsFile); err != nil {
		return err
	}
	if err := b.startRedis(); err != nil {
		return err
	}
	if b.redisAddr != "" {
		if err := b.startSessiongate(bin, "sg-redis-hs256", hsFile, true, "JWT_SECRET="+keys.secret); err != nil {
			return err
		}
		if err := b.startSessiongate(bin, "sg-redis-rs256", rsFile, true, "JWT_PUBLIC_KEY_FILE="+keys.publicKeyFile); err != nil {
			return err
		}
	}
	return b.startSessiongate(bin, "sg-memory", memFile, false, "JWT_SECRET="+keys.secret)
}

// runRounds warms every target up, then measures them in turn for
// cfg.rounds rounds, each round starting one target later so that no
// target always runs first or last.
func (b *bench) runRounds(ctx context.Context, res *results) error {
	var active []*target
	for _, t := range b.targets {
		if b.wanted(t.name) {
			active = append(active, t)
			res.order = append(res.order, t.name)
		}
	}
	for _, t := range active {
		fmt.Fprintf(os.Stderr, "warming up %s for %s\n", t.name, b.cfg.warmup)
		w, err := runWrk(ctx, b.script, t.url, t.tokenFile, b.cfg.threads, b.cfg.connections, b.cfg.warmup)
		if err != nil {
			return err
		}
		if w.errors() > 0 {
			return fmt.Errorf("warm-up of %s had %d errors (%d non-2xx responses); see its log in %s", t.name, w.errors(), w.StatusErrors, b.dir)
		}
	}

	res.machine.loadBefore = loadAverage()
	for round := range b.cfg.rounds {
		for i := range active {
			t := active[(i+round)%len(active)]
			s, err := b.measure(ctx, t, round)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "round %d %-15s %8.0f req/s  p50 %5dµs  p99 %6dµs  cpu/req %6.1fµs  errors %d\n",
				round+1, t.name, s.wrk.rate(), s.wrk.P50US, s.wrk.P99US, perRequest(s.cpu, s.wrk.Requests), s.wrk.errors())
			res.samples[t.name] = append(res.samples[t.name], s)
		}
	}
	return b.profile(ctx)
}

// profile takes a CPU profile of sessiongate with Redis and HS256 during
// one extra wrk run, which the figures leave out because profiling costs
// the profiled process CPU.
func (b *bench) profile(ctx context.Context) error {
	t := b.find("sg-redis-hs256")
	if b.cfg.profile == "" || t == nil {
		return nil
	}
	fmt.Fprintf(os.Stderr, "profiling %s for %s\n", t.name, b.cfg.duration)
	done := make(chan error, 1)
	go func() { done <- b.captureProfile(ctx, t, b.cfg.duration-2*time.Second) }()
	_, err := runWrk(ctx, b.script, t.url, t.tokenFile, b.cfg.threads, b.cfg.connections, b.cfg.duration)
	if perr := <-done; perr != nil {
		b.note("CPU profile not written: %v", perr)
	}
	return err
}

// measure runs wrk once on t and reads the CPU time of t's processes, of
// redis-server and Redis's command counts around it.
func (b *bench) measure(ctx context.Context, t *target, round int) (sample, error) {
	var rc *redis.Client
	var before commandCounts
	if t.usesRedis {
		rc = redis.NewClient(&redis.Options{Addr: b.redisAddr, DisableIdentity: true})
		defer rc.Close()
		var err error
		if before, err = readCommandCounts(ctx, rc); err != nil {
			return sample{}, err
		}
	}
	redisCPU0 := b.redisCPU()
	reads0, _ := readCalls(b.redisPID)
	cpu0 := cpuOf(t.pids)

	w, err := runWrk(ctx, b.script, t.url, t.tokenFile, b.cfg.threads, b.cfg.connections, b.cfg.duration)
	if err != nil {
		return sample{}, err
	}
	s := sample{round: round, wrk: w, cpu: cpuOf(t.pids) - cpu0, redisCPU: b.redisCPU() - redisCPU0}
	if t.usesRedis {
		after, err := readCommandCounts(ctx, rc)
		if err != nil {
			return sample{}, err
		}
		s.roundTrips = roundTrips(before, after)
		reads, err := readCalls(b.redisPID)
		if err != nil {
			return sample{}, fmt.Errorf("read redis-server I/O counters: %w", err)
		}
		s.redisReads = reads - reads0
		s.scriptTime = scriptTime(before, after)
	}
	return s, nil
}

func (b *bench) redisCPU() time.Duration {
	if b.redisPID == 0 {
		return 0
	}
	return cpuOf([]int{b.redisPID})
}

// captureProfile fetches a CPU profile of d from t's admin listener.
func (b *bench) captureProfile(ctx context.Context, t *target, d time.Duration) error {
	secs := max(1, int(d/time.Second))
	ctx, cancel := context.WithTimeout(ctx, d+15*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", t.adminAddr, secs)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %s; is PPROF=1 supported by this build?", url, resp.Status)
	}
	f, err := os.Create(b.cfg.profile)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runConstantRate drives each proxy at half the floor's median
// throughput and records latency from each request's scheduled time.
func (b *bench) runConstantRate(ctx context.Context, res *results) error {
	if b.cfg.rateDuration <= 0 {
		return nil
	}
	floor := res.samples["bare"]
	if len(floor) == 0 {
		b.note("the constant-rate runs need the bare proxy's throughput; they were skipped")
		return nil
	}
	rates := make([]float64, 0, len(floor))
	for _, s := range floor {
		rates = append(rates, s.wrk.rate())
	}
	res.rate = median(rates) / 2

	var active []*target
	tokens := map[string][]string{}
	for _, t := range b.targets {
		if t.name == "backend" || !b.wanted(t.name) {
			continue
		}
		list, err := readTokens(t.tokenFile)
		if err != nil {
			return fmt.Errorf("read tokens of %s: %w", t.name, err)
		}
		active = append(active, t)
		tokens[t.name] = list
	}
	for round := range b.cfg.rounds {
		for i := range active {
			t := active[(i+round)%len(active)]
			r, err := runOpenLoop(ctx, t.url+"/api/items", tokens[t.name], res.rate, b.cfg.rateDuration, time.Second, b.cfg.connections)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "constant rate round %d %-15s %6.0f req/s  p50 %6.2fms  p99 %7.2fms  failed %d\n",
				round+1, t.name, res.rate, r.P50.Seconds()*1000, r.P99.Seconds()*1000, r.Failed)
			res.openLoop[t.name] = append(res.openLoop[t.name], r)
		}
	}
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func perRequest(d time.Duration, requests int64) float64 {
	if requests == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(requests)
}
