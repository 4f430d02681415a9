package sessions

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/configs"
)

// PolicyFrom returns the session policy of a validated configuration.
func PolicyFrom(cfg configs.Config) Policy {
	return Policy{
		Lifetime:            cfg.SessionLifetime.Duration(),
		AbsoluteLifetime:    cfg.SessionAbsoluteLifetime.Duration(),
		CreateWindow:        cfg.CreateWindow(),
		Leeway:              cfg.JWTLeeway,
		MaxPerUser:          cfg.SessionMaxPerUser,
		TouchInterval:       cfg.ActivityTouchInterval,
		ActivityLogInterval: cfg.ActivityLogInterval,
		BindIP:              cfg.SessionBindIP,
		BindUserAgent:       cfg.SessionBindUserAgent,
		MaxMarkerTTL:        DefaultMaxMarkerTTL,
	}
}

// OpenStore builds the store a validated configuration names. It does not
// contact Redis; call Ping for that.
func OpenStore(cfg configs.Config) (Store, error) {
	policy := PolicyFrom(cfg)
	if cfg.SessionStore == "memory" {
		return NewMemoryStore(policy), nil
	}
	client, err := NewRedisClient(cfg)
	if err != nil {
		return nil, err
	}
	return NewRedisStore(client, cfg.RedisPrefix, policy), nil
}

// NewRedisClient returns a single-node, Sentinel or Cluster client for a
// validated configuration.
func NewRedisClient(cfg configs.Config) (redis.UniversalClient, error) {
	opts := &redis.UniversalOptions{
		Addrs:      []string{net.JoinHostPort(cfg.RedisHost, strconv.Itoa(cfg.RedisPort))},
		Username:   cfg.RedisUsername,
		Password:   cfg.RedisPassword,
		DB:         cfg.RedisDB,
		MasterName: cfg.RedisMasterName,
	}
	if cfg.RedisURL != "" {
		parsed, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("parse REDIS_URL: %w", err)
		}
		opts.Addrs = []string{parsed.Addr}
		opts.Username, opts.Password, opts.DB = parsed.Username, parsed.Password, parsed.DB
		opts.TLSConfig = parsed.TLSConfig
	} else if len(cfg.RedisAddrs) > 0 {
		opts.Addrs = trimAll(cfg.RedisAddrs)
	}

	// Requests carry their own deadline of REDIS_TIMEOUT; the client must
	// honour it instead of its longer socket timeouts.
	opts.ContextTimeoutEnabled = true
	opts.DialTimeout = max(cfg.RedisTimeout, time.Second)
	opts.ReadTimeout = max(cfg.RedisTimeout, 3*time.Second)
	opts.WriteTimeout = opts.ReadTimeout
	opts.MaxRetries = 1
	// One connection per concurrent request up to a point. Redis serves
	// each command in microseconds, so more would only queue inside Redis.
	opts.PoolSize = max(32, 16*runtime.GOMAXPROCS(0))
	opts.DisableIdentity = true

	if len(opts.Addrs) > 1 && opts.MasterName == "" {
		// Cluster has database 0 only.
		opts.DB = 0
	}
	return redis.NewUniversalClient(opts), nil
}

// OpenVerifier builds the token verifier of a validated configuration,
// reading the public key file or starting the JWK Set client when one is
// set. The JWK Set client refreshes until ctx ends.
func OpenVerifier(ctx context.Context, cfg configs.Config, log *zap.Logger) (*Verifier, error) {
	var key any = []byte(cfg.JWTSecret)
	var kf jwt.Keyfunc
	var cacheTTL time.Duration
	if cfg.JWTJWKSURL != "" {
		var err error
		if kf, err = OpenJWKS(ctx, cfg.JWTJWKSURL, cfg.JWTJWKSRefresh, log); err != nil {
			return nil, err
		}
		cacheTTL = JWKSCacheTTL
	} else if cfg.JWTPublicKeyFile != "" {
		k, err := LoadPublicKey(cfg.JWTPublicKeyFile)
		if err != nil {
			return nil, err
		}
		key = k
	}
	forward := make([]string, 0, len(cfg.ForwardClaims))
	for claim := range cfg.ClaimHeaders() {
		forward = append(forward, claim)
	}
	algs := make([]string, 0, len(cfg.JWTAlgorithms))
	for _, a := range cfg.JWTAlgorithms {
		algs = append(algs, strings.TrimSpace(a))
	}
	v, err := NewVerifier(VerifierConfig{
		Key:           key,
		Keyfunc:       kf,
		CacheTTL:      cacheTTL,
		Algorithms:    algs,
		Issuer:        cfg.JWTIssuer,
		Audience:      trimAll(cfg.JWTAudience),
		Leeway:        cfg.JWTLeeway,
		RequireIAT:    cfg.JWTRequireIAT,
		UserIDClaim:   cfg.JWTUserIDClaim,
		EmailClaim:    cfg.JWTEmailClaim,
		ForwardClaims: forward,
		CacheEntries:  cfg.JWTCacheEntries,
	})
	if err != nil {
		return nil, fmt.Errorf("configure token verification: %w", err)
	}
	return v, nil
}

// redisLogger sends go-redis's own messages (dial retries, pool events) to
// zap at debug level, because the callers log the failures that matter
// with their ids.
type redisLogger struct{ log *zap.SugaredLogger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Debugf(format, v...)
}

// RouteRedisLogs makes go-redis log through log instead of the standard
// library logger on stderr. It affects every client in the process.
func RouteRedisLogs(log *zap.Logger) {
	redis.SetLogger(redisLogger{log: log.Named("redis").Sugar()})
}

// trimAll returns list with blanks around each item removed and empty
// items dropped, so that "api, web" means "api" and "web".
func trimAll(list []string) []string {
	out := make([]string, 0, len(list))
	for _, item := range list {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
