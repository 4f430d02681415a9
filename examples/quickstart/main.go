// Command quickstart runs sessiongate on one machine that has only Go
// installed, so that you can try it out with curl:
//
//	go run ./examples/quickstart
//
// It starts a sample backend that returns the identity headers it receives
// as JSON, and sessiongate in front of it with the in-memory session store.
// When REDIS_URL is set in the environment, sessiongate keeps its sessions
// in that Redis instead. The command then prints a sample token and the
// curl commands to try. Ctrl-C (SIGINT) or SIGTERM stops everything and the
// command exits with status 0.
//
// The sample backend and the token minting exist only for trying sessiongate
// out and are not part of the production path. In production, sessiongate
// runs as cmd/sessiongate in front of your own backend, and your own login
// issues the tokens.
//
// Flags:
//
//	-listen ADDR   sessiongate's public listener (default 127.0.0.1:8080)
//	-admin ADDR    sessiongate's admin listener with /healthz, /readyz and
//	               /metrics (default 127.0.0.1:9090)
//	-backend ADDR  the sample backend (default 127.0.0.1:8000)
//
// An address without a host, such as :0, listens on 127.0.0.1. Port 0 picks
// a free port. The banner goes to standard output and the logs to standard
// error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessiongate/sessiongate/configs"
	"github.com/sessiongate/sessiongate/proxy"
)

// Exit statuses.
const (
	exitOK       = 0
	exitFailure  = 1 // a listener or the sample backend failed
	exitBadUsage = 2 // bad flags or configuration
)

const usage = `Usage: go run ./examples/quickstart [flags]

Starts a sample backend and sessiongate in front of it on 127.0.0.1, for
trying sessiongate out, and prints a sample token and curl commands.
Sessions are kept in memory, or in Redis when REDIS_URL is set.

Flags:
`

// readyWait bounds how long the command waits for /readyz before it prints
// the banner anyway with a warning.
const readyWait = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv("REDIS_URL"))
	stop()
	os.Exit(code)
}

// run starts the sample backend and sessiongate, prints the banner to
// stdout and serves until ctx is done. redisURL selects the Redis store
// when it is not empty. It returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, redisURL string) int {
	flags := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(stderr, usage)
		flags.PrintDefaults()
	}
	listenAddr := flags.String("listen", "127.0.0.1:8080", "sessiongate's public listener `address`; port 0 picks a free port")
	adminAddr := flags.String("admin", "127.0.0.1:9090", "sessiongate's admin listener `address` (/healthz, /readyz, /metrics)")
	backendAddr := flags.String("backend", "127.0.0.1:8000", "the sample backend's `address`")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitBadUsage
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "quickstart: unexpected argument %q; the command takes only the flags -listen, -admin and -backend\n", flags.Arg(0))
		return exitBadUsage
	}

	requests := []listenRequest{
		{flag: "-listen", addr: *listenAddr},
		{flag: "-admin", addr: *adminAddr},
		{flag: "-backend", addr: *backendAddr},
	}
	if err := normalizeAddrs(requests); err != nil {
		fmt.Fprintln(stderr, "quickstart:", err)
		return exitBadUsage
	}

	// Open every listener before anything serves, so that a busy port stops
	// the command at once and port 0 is resolved before the banner names it.
	listeners, err := listenAll(requests)
	if err != nil {
		fmt.Fprintln(stderr, "quickstart:", err)
		return exitFailure
	}
	ln := openListeners{public: listeners[0], admin: listeners[1], backend: listeners[2]}
	defer ln.close()

	secret, err := newSecret()
	if err != nil {
		fmt.Fprintln(stderr, "quickstart:", err)
		return exitFailure
	}
	cfg, ok := gateConfig(stderr, ln, secret, redisURL)
	if !ok {
		return exitBadUsage
	}
	log := newLogger(stderr)
	defer log.Sync()
	app, err := proxy.NewApp(cfg, log)
	if err != nil {
		log.Error("start-up failed", zap.Error(err))
		return exitBadUsage
	}
	token, err := mintToken(secret, time.Now())
	if err != nil {
		log.Error("mint sample token", zap.Error(err))
		return exitFailure
	}
	return serve(ctx, stdout, log, app, ln, token, redisURL)
}

// openListeners are the command's three listeners.
type openListeners struct {
	public, admin, backend net.Listener
}

func (l openListeners) close() {
	l.public.Close()
	l.admin.Close()
	l.backend.Close()
}

// serve runs the sample backend and app on ln, prints the banner once
// sessiongate is ready or readyWait has passed, and returns the exit status
// after ctx is done and both have stopped.
func serve(ctx context.Context, stdout io.Writer, log *zap.Logger, app *proxy.App, ln openListeners, token, redisURL string) int {
	backend := newSampleBackend(log.Named("sample_backend"))
	backendErr := make(chan error, 1)
	go func() { backendErr <- backend.Serve(ln.backend) }()

	// App.Serve blocks until ctx is done, so it runs in its own goroutine
	// while this one waits for readiness and prints the banner.
	serveErr := make(chan error, 1)
	go func() { serveErr <- app.Serve(ctx, ln.public, ln.admin) }()
	ready := waitReady(ctx, loopbackURL(ln.admin.Addr())+"/readyz", readyWait)

	printBanner(stdout, banner{
		PublicURL:  loopbackURL(ln.public.Addr()),
		AdminURL:   loopbackURL(ln.admin.Addr()),
		BackendURL: loopbackURL(ln.backend.Addr()),
		Token:      token,
		RedisURL:   redactedURL(redisURL),
		Ready:      ready,
	})

	status := exitOK
	select {
	case err := <-serveErr:
		// App.Serve has logged a listener failure already.
		if err != nil {
			status = exitFailure
		}
	case err := <-backendErr:
		// Returning ends the process, and sessiongate with it.
		log.Error("sample backend failed", zap.Error(err))
		return exitFailure
	}

	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := backend.Shutdown(shutdownCtx); err != nil {
		backend.Close()
	}
	fmt.Fprintln(stdout, "quickstart stopped")
	return status
}

// gateConfig builds and validates sessiongate's configuration as
// environment variables would set it. It prints every problem to stderr and
// reports whether the configuration is valid.
func gateConfig(stderr io.Writer, ln openListeners, secret, redisURL string) (configs.Config, bool) {
	environ := map[string]string{
		"LISTEN_ADDR":      ln.public.Addr().String(),
		"ADMIN_ADDR":       ln.admin.Addr().String(),
		"UPSTREAM_URL":     loopbackURL(ln.backend.Addr()),
		"JWT_SECRET":       secret,
		"JWT_ALGORITHMS":   "HS256",
		"SESSION_STORE":    "memory",
		"LOG_FORMAT":       "console",
		"SHUTDOWN_TIMEOUT": "5s",
	}
	if redisURL != "" {
		environ["SESSION_STORE"] = "redis"
		environ["REDIS_URL"] = redisURL
	}

	cfg, err := configs.LoadFrom(environ)
	if err == nil {
		err = cfg.Validate()
	}
	var problems configs.Problems
	if errors.As(err, &problems) {
		fmt.Fprintln(stderr, "quickstart: invalid configuration:")
		for _, p := range problems {
			fmt.Fprintln(stderr, "  "+p.String())
		}
		return cfg, false
	}
	if err != nil {
		fmt.Fprintln(stderr, "quickstart:", err)
		return cfg, false
	}
	return cfg, true
}

// newLogger returns a console logger on w for people reading a terminal.
// Stack traces are off because the memory store's start-up warning is
// expected here.
func newLogger(w io.Writer) *zap.Logger {
	encoderConfig := zap.NewDevelopmentEncoderConfig()
	encoderConfig.EncodeTime = zapcore.TimeEncoderOfLayout(time.TimeOnly)
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(encoderConfig), zapcore.AddSync(w), zapcore.InfoLevel)
	return zap.New(core)
}

// waitReady polls url until it returns 200, ctx is done or timeout passes,
// and reports whether it returned 200.
func waitReady(ctx context.Context, url string, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}
