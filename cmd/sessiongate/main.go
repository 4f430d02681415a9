// Command sessiongate is a sidecar reverse proxy that enforces server-side
// sessions in Redis for JWT-authenticated requests to an unmodified backend.
//
// Usage:
//
//	sessiongate              serve (configured by environment variables)
//	sessiongate cleanup      run one cleanup sweep and print the result
//	sessiongate healthcheck  probe /healthz on ADMIN_ADDR; exit 0 when healthy
//	sessiongate version      print the version
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessiongate/sessiongate/configs"
	"github.com/sessiongate/sessiongate/proxy"
	"github.com/sessiongate/sessiongate/sessions"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit statuses.
const (
	exitOK       = 0
	exitFailure  = 1
	exitBadUsage = 2 // bad configuration or arguments
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "serve":
		return serve()
	case "cleanup":
		return cleanup()
	case "healthcheck":
		return healthcheck()
	case "version", "--version", "-v":
		fmt.Println("sessiongate", version)
		return exitOK
	case "help", "--help", "-h":
		fmt.Print(usage)
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "sessiongate: unknown command %q\n\n%s", cmd, usage)
	return exitBadUsage
}

const usage = `Usage: sessiongate [command]

Commands:
  serve        run the proxy (the default); configured by environment variables
  cleanup      run one cleanup sweep against the store and print what it did
  healthcheck  probe /healthz on ADMIN_ADDR; exit 0 when healthy
  version      print the version

See the README for the environment variables.
`

// loadConfig reads and validates the environment, printing every problem.
// When only is not nil, problems of other variables are ignored, so that
// `sessiongate cleanup` needs no UPSTREAM_URL or JWT settings.
func loadConfig(only func(variable string) bool) (configs.Config, bool) {
	cfg, err := configs.Load()
	if err == nil {
		err = cfg.Validate()
	}
	var problems configs.Problems
	if errors.As(err, &problems) && only != nil {
		kept := problems[:0]
		for _, p := range problems {
			if only(p.Variable) {
				kept = append(kept, p)
			}
		}
		if problems = kept; len(problems) == 0 {
			err = nil
		}
	}
	if len(problems) > 0 {
		fmt.Fprintln(os.Stderr, "sessiongate: invalid configuration:")
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "  "+p.String())
		}
		return cfg, false
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sessiongate:", err)
		return cfg, false
	}
	return cfg, true
}

func newLogger(cfg configs.Config) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("parse LOG_LEVEL: %w", err)
	}
	zc := zap.NewProductionConfig()
	if cfg.LogFormat == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
	}
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.Sampling = nil
	zc.EncoderConfig.TimeKey = "time"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	// Durations read as in the configuration ("30s", "1.2ms").
	zc.EncoderConfig.EncodeDuration = zapcore.StringDurationEncoder
	// Every error line carries its ids; stack traces of our own call sites
	// would only bury them.
	zc.DisableStacktrace = true
	log, err := zc.Build()
	if err != nil {
		return nil, fmt.Errorf("build logger: %w", err)
	}
	sessions.RouteRedisLogs(log)
	return log, nil
}

func serve() int {
	cfg, ok := loadConfig(nil)
	if !ok {
		return exitBadUsage
	}
	log, err := newLogger(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sessiongate:", err)
		return exitBadUsage
	}
	defer log.Sync()
	log.Info("configuration", zap.Any("config", cfg.Redacted()), zap.String("version", version))

	app, err := proxy.NewApp(cfg, log)
	if err != nil {
		log.Error("start-up failed", zap.Error(err))
		fmt.Fprintln(os.Stderr, "sessiongate:", err)
		return exitBadUsage
	}
	public, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		log.Error("listen failed", zap.String("addr", cfg.ListenAddr), zap.Error(err))
		fmt.Fprintf(os.Stderr, "sessiongate: LISTEN_ADDR=%q: %v\n", cfg.ListenAddr, err)
		return exitFailure
	}
	admin, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		public.Close()
		log.Error("listen failed", zap.String("addr", cfg.AdminAddr), zap.Error(err))
		fmt.Fprintf(os.Stderr, "sessiongate: ADMIN_ADDR=%q: %v\n", cfg.AdminAddr, err)
		return exitFailure
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := app.Serve(ctx, public, admin); err != nil {
		return exitFailure
	}
	return exitOK
}
