package proxy

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// logThrottle lets through at most one log line per key per interval and
// counts the lines it held back, so that a flood of identical failures (a
// wrong JWT secret, Redis down) stays readable without hiding the cause.
type logThrottle struct {
	interval time.Duration

	mu   sync.Mutex
	seen map[string]*throttleEntry
}

type throttleEntry struct {
	last       time.Time
	suppressed int
}

// maxThrottleKeys bounds the map; keys are a handful of error kinds, so
// reaching it means keys carry request data, and the map starts over.
const maxThrottleKeys = 1024

func newLogThrottle(interval time.Duration) *logThrottle {
	return &logThrottle{interval: interval, seen: map[string]*throttleEntry{}}
}

// allow reports whether a line for key may be logged now and, if so, how
// many were suppressed since the last one, as a field to add to it.
func (l *logThrottle) allow(key string, now time.Time) (bool, zap.Field) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.seen[key]
	if e == nil {
		if len(l.seen) >= maxThrottleKeys {
			l.seen = map[string]*throttleEntry{}
		}
		e = &throttleEntry{}
		l.seen[key] = e
	}
	if !e.last.IsZero() && now.Sub(e.last) < l.interval {
		e.suppressed++
		return false, zap.Skip()
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return true, zap.Int("suppressed_since_last", n)
}
