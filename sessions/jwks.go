package sessions

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
)

// JWKSCacheTTL bounds how long a token verified with a JWK Set key stays
// cached, so a key removed from the set stops working within this time.
const JWKSCacheTTL = 5 * time.Minute

// OpenJWKS starts a JWK Set client for url that refreshes the set every
// refresh and on an unknown kid (rate-limited by the library), until ctx
// ends. A failed first fetch is logged, not fatal: tokens are rejected
// until the set arrives, and a restart is not needed.
func OpenJWKS(ctx context.Context, url string, refresh time.Duration, log *zap.Logger) (jwt.Keyfunc, error) {
	noErrorOnFirstFetch := true
	log = log.Named("jwks")
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{url}, keyfunc.Override{
		Client:                    &http.Client{Timeout: 10 * time.Second},
		HTTPTimeout:               10 * time.Second,
		RefreshInterval:           refresh,
		NoErrorReturnFirstHTTPReq: &noErrorOnFirstFetch,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(_ context.Context, err error) {
				log.Warn("jwks refresh failed", zap.String("url", u), zap.Error(err))
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("open JWK Set %s: %w", url, err)
	}
	return kf.Keyfunc, nil
}
