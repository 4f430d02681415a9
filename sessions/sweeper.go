package sessions

import (
	"context"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"
)

// Sweeper runs Store.Sweep on a ticker.
type Sweeper struct {
	Store    Store
	Interval time.Duration
	Log      *zap.Logger
	// Observe, when set, receives every sweep's report and error.
	Observe func(SweepReport, error)
}

// Run sweeps every Interval until ctx is done. A tick is skipped when any
// process sharing the store swept within the last 90% of Interval, so that
// replicas together sweep about once per interval.
func (s *Sweeper) Run(ctx context.Context) {
	if s.Interval <= 0 {
		return
	}
	log := s.Log.Named("sweep")
	// The first sweep comes after a random part of one interval, capped at a
	// minute, so that a process restarted more often than the interval still
	// sweeps and replicas started together do not all try at once.
	first := time.Duration(rand.Int64N(int64(min(s.Interval, time.Minute)) + 1))
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			timer.Reset(s.Interval)
		}
		if last, ok, err := s.Store.LastSweep(ctx); err == nil && ok && time.Since(last.StartedAt) < s.Interval*9/10 {
			log.Debug("cleanup skipped, swept recently", zap.Time("last_started_at", last.StartedAt))
			continue
		}
		report, err := s.Store.Sweep(ctx, time.Now())
		if err != nil && ctx.Err() != nil {
			// Shutdown cancelled the sweep, which is no failure to report.
			// Sweep releases its lock on return, so the next process to
			// tick can sweep at once.
			log.Info("cleanup stopped by shutdown", zap.Int("found", report.Found), zap.Duration("duration", report.Duration))
			return
		}
		if s.Observe != nil {
			s.Observe(report, err)
		}
		LogSweep(log, report, err)
	}
}

// LogSweep writes one summary line for a sweep.
func LogSweep(log *zap.Logger, r SweepReport, err error) {
	switch {
	case err != nil:
		log.Error("cleanup failed", zap.Error(err), zap.Int("found", r.Found), zap.Duration("duration", r.Duration))
	case r.Skipped:
		log.Info("cleanup skipped, another process holds the sweep lock")
	default:
		log.Info("cleanup finished",
			zap.Int("found", r.Found),
			zap.Int("removed_no_ttl", r.Removed[RemovedNoTTL]),
			zap.Int("removed_orphan_metadata", r.Removed[RemovedOrphanMetadata]),
			zap.Int("removed_stale_index_entries", r.Removed[RemovedStaleIndexEntry]),
			zap.Int("remaining", r.Remaining),
			zap.Int("sessions", r.Sessions),
			zap.Int("users", r.Users),
			zap.Duration("duration", r.Duration))
	}
}
