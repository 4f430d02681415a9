package proxy

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/configs"
	"github.com/sessiongate/sessiongate/sessions"
)

// memorySweepInterval sweeps the memory store when CLEANUP_INTERVAL is 0.
const memorySweepInterval = 5 * time.Minute

// App is a whole sessiongate: the gateway on the public listener, the
// admin handler, the store and the cleanup sweep.
type App struct {
	cfg     configs.Config
	log     *zap.Logger
	store   sessions.Store
	metrics *Metrics
	gateway *Gateway
	admin   *Admin
}

// NewApp builds an App from a validated configuration. It does not listen
// or contact Redis yet.
func NewApp(cfg configs.Config, log *zap.Logger) (*App, error) {
	// The JWK Set client, when configured, refreshes for the process's life.
	verifier, err := sessions.OpenVerifier(context.Background(), cfg, log)
	if err != nil {
		return nil, err
	}
	store, err := sessions.OpenStore(cfg)
	if err != nil {
		return nil, err
	}
	metrics := NewMetrics()
	gateway, err := NewGateway(Options{Config: cfg, Verifier: verifier, Store: store, Metrics: metrics, Logger: log})
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("build gateway: %w", err)
	}
	admin := NewAdmin(store, metrics, cfg.AdminToken, max(cfg.RedisTimeout, time.Second), log)
	return &App{cfg: cfg, log: log, store: store, metrics: metrics, gateway: gateway, admin: admin}, nil
}

// Store returns the app's session store.
func (a *App) Store() sessions.Store { return a.store }

// Serve serves the public and admin listeners until ctx is done, then
// shuts down in order. Readiness turns false and requests are still served
// for ShutdownDelay. Then the public listener stops accepting, in-flight
// requests get ShutdownTimeout to finish, the sweep stops and the store is
// closed. Serve returns nil after a clean shutdown.
func (a *App) Serve(ctx context.Context, public, admin net.Listener) error {
	log := a.log
	if a.cfg.SessionStore == "memory" {
		log.Warn("sessions are kept in this process only: they are lost on restart and not shared between replicas")
	}
	pingCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if err := a.store.Ping(pingCtx); err != nil {
		// Not fatal: readiness stays false until the store responds.
		log.Warn("session store unreachable at start", zap.Error(err))
	}
	cancel()

	publicSrv := &http.Server{
		Handler:           a.gateway,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    a.cfg.MaxHeaderBytes,
		ErrorLog:          zapStdLog(log.Named("http")),
	}
	adminSrv := &http.Server{
		Handler:           a.admin,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          zapStdLog(log.Named("admin_http")),
	}

	errs := make(chan error, 2)
	serve := func(srv *http.Server, ln net.Listener, name string) {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("serve %s listener: %w", name, err)
		}
	}
	go serve(publicSrv, public, "public")
	go serve(adminSrv, admin, "admin")

	sweepCtx, stopSweep := context.WithCancel(context.WithoutCancel(ctx))
	var sweepDone sync.WaitGroup
	interval := a.cfg.CleanupInterval
	if interval == 0 && a.cfg.SessionStore == "memory" {
		// The memory store frees expired entries only when swept, so it
		// sweeps even with the ticker turned off; no other process could.
		interval = memorySweepInterval
	}
	sweeper := &sessions.Sweeper{Store: a.store, Interval: interval, Log: log, Observe: a.metrics.ObserveSweep}
	sweepDone.Go(func() { sweeper.Run(sweepCtx) })

	a.admin.SetReady(true)
	log.Info("sessiongate started", zap.String("listen_addr", public.Addr().String()),
		zap.String("admin_addr", admin.Addr().String()), zap.Any("upstream", a.cfg.Redacted()["UPSTREAM_URL"]),
		zap.String("store", a.cfg.SessionStore))

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errs:
		log.Error("listener failed", zap.Error(serveErr))
	}

	log.Info("sessiongate stopping", zap.Duration("shutdown_timeout", a.cfg.ShutdownTimeout))
	a.admin.SetReady(false)
	if a.cfg.ShutdownDelay > 0 {
		log.Info("readiness off, still serving", zap.Duration("shutdown_delay", a.cfg.ShutdownDelay))
		time.Sleep(a.cfg.ShutdownDelay)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := publicSrv.Shutdown(shutdownCtx); err != nil {
		log.Warn("in-flight requests did not finish in time", zap.Error(err))
		publicSrv.Close()
	}
	stopSweep()
	sweepDone.Wait()
	adminCtx, cancelAdmin := context.WithTimeout(context.Background(), time.Second)
	defer cancelAdmin()
	if err := adminSrv.Shutdown(adminCtx); err != nil {
		adminSrv.Close()
	}
	if err := a.store.Close(); err != nil {
		log.Warn("close session store", zap.Error(err))
	}
	log.Info("sessiongate stopped")
	return serveErr
}

func zapStdLog(log *zap.Logger) *stdlog.Logger {
	l, _ := zap.NewStdLogAt(log, zap.WarnLevel)
	return l
}
