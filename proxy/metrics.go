package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sessiongate/sessiongate/sessions"
)

// Metrics are sessiongate's Prometheus collectors, registered on their own
// registry so that tests can build several gateways in one process.
type Metrics struct {
	Registry *prometheus.Registry

	requests     *prometheus.CounterVec
	storeErrors  prometheus.Counter
	storeLatency prometheus.Histogram
	sessions     *prometheus.CounterVec

	sweepRuns      *prometheus.CounterVec
	sweepFound     prometheus.Gauge
	sweepRemoved   *prometheus.CounterVec
	sweepRemaining prometheus.Gauge
	sweepDuration  prometheus.Gauge
	sweepSessions  prometheus.Gauge
	sweepUsers     prometheus.Gauge
}

// NewMetrics creates and registers the collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiongate_requests_total",
			Help: "Requests on the public listener by outcome: forwarded, anonymous, or the rejection code.",
		}, []string{"outcome"}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessiongate_store_errors_total",
			Help: "Session store calls on the request path that failed or timed out.",
		}),
		storeLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sessiongate_store_access_seconds",
			Help:    "Duration of the session store call on the request path.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5},
		}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiongate_session_events_total",
			Help: "Session events by kind: created, expired, revoked, evicted, logout.",
		}, []string{"event"}),
		sweepRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiongate_sweep_runs_total",
			Help: "Cleanup sweeps by result: done, skipped (another replica held the lock), failed.",
		}, []string{"result"}),
		sweepFound: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sessiongate_sweep_found_keys",
			Help: "Keys under the prefix that the last sweep examined.",
		}),
		sweepRemoved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiongate_sweep_removed_total",
			Help: "Keys or index entries removed by sweeps, by kind.",
		}, []string{"kind"}),
		sweepRemaining: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sessiongate_sweep_remaining_keys",
			Help: "Keys under the prefix left after the last sweep.",
		}),
		sweepDuration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sessiongate_sweep_duration_seconds",
			Help: "Duration of the last sweep.",
		}),
		sweepSessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sessiongate_sweep_live_sessions",
			Help: "Live sessions seen by the last sweep.",
		}),
		sweepUsers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sessiongate_sweep_users",
			Help: "Users with a session index seen by the last sweep.",
		}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.storeErrors, m.storeLatency, m.sessions,
		m.sweepRuns, m.sweepFound, m.sweepRemoved, m.sweepRemaining,
		m.sweepDuration, m.sweepSessions, m.sweepUsers,
	)
	return m
}

// ObserveSweep records a sweep's report.
func (m *Metrics) ObserveSweep(r sessions.SweepReport, err error) {
	switch {
	case err != nil:
		m.sweepRuns.WithLabelValues("failed").Inc()
		return
	case r.Skipped:
		m.sweepRuns.WithLabelValues("skipped").Inc()
		return
	}
	m.sweepRuns.WithLabelValues("done").Inc()
	m.sweepFound.Set(float64(r.Found))
	m.sweepRemaining.Set(float64(r.Remaining))
	m.sweepDuration.Set(r.Duration.Seconds())
	m.sweepSessions.Set(float64(r.Sessions))
	m.sweepUsers.Set(float64(r.Users))
	for kind, n := range r.Removed {
		m.sweepRemoved.WithLabelValues(kind).Add(float64(n))
	}
}
