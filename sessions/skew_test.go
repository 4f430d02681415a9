package sessions_test

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/configs"
	"github.com/sessiongate/sessiongate/sessions"
)

// Regression: a replica whose clock runs ahead pruned the per-user index by
// score, dropping sessions that Redis still kept alive, and a later
// RevokeUser then missed them.
func TestRedisIndexSurvivesReplicaClockAhead(t *testing.T) {
	p := testPolicy()
	p.Lifetime = 5 * time.Second
	p.MaxPerUser = 5
	st := newRedisStore(t, p)
	now := time.Now()

	first := newTestToken(t, "skew", now)
	second := newTestToken(t, "skew", now)
	wantStatus(t, mustAccess(t, st, first.request(now, defaultClient)), sessions.StatusCreated, "")
	wantStatus(t, mustAccess(t, st, second.request(now, defaultClient)), sessions.StatusCreated, "")

	// Another replica, 10 s ahead, creates a third session.
	ahead := now.Add(10 * time.Second)
	third := newTestToken(t, "skew", now)
	wantStatus(t, mustAccess(t, st, third.request(ahead, defaultClient)), sessions.StatusCreated, "")

	n, err := st.RevokeUser(context.Background(), "skew", now)
	if err != nil {
		t.Fatalf("RevokeUser: %v", err)
	}
	if n != 3 {
		t.Errorf("RevokeUser revoked %d sessions, want 3: every session Redis still holds", n)
	}
	for _, tk := range []testToken{first, second} {
		res := mustAccess(t, st, tk.request(now, defaultClient))
		if res.Status != sessions.StatusRevoked {
			t.Errorf("Access of %s after RevokeUser = %s, want revoked", tk.sessionID, res.Status)
		}
	}
}

// Regression: list items with blanks around them, as people write
// "api, web", were kept with the blank and never matched.
func TestOpenVerifierTrimsAudienceItems(t *testing.T) {
	cfg, err := configs.LoadFrom(map[string]string{
		"UPSTREAM_URL": "http://127.0.0.1:8000",
		"JWT_SECRET":   "0123456789abcdef0123456789abcdef",
		"JWT_AUDIENCE": "api, web",
	})
	if err != nil {
		t.Fatalf("LoadFrom: %v", err)
	}
	v, err := sessions.OpenVerifier(context.Background(), cfg, zap.NewNop())
	if err != nil {
		t.Fatalf("OpenVerifier: %v", err)
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "u1", "aud": "web", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(cfg.JWTSecret))
	if err != nil {
		t.Fatalf("sign token: %v", err)
	}
	if _, err := v.Verify(token, sessions.TokenDigest(token)); err != nil {
		t.Errorf("Verify(aud web) with JWT_AUDIENCE=%q: %v, want accepted", "api, web", err)
	}
}

// Regression: a "revoked before" instant in the first millisecond of a
// second let a token with that second as its iat through, although it may
// have been issued before the call.
func TestRevokeUserRejectsTokenOfSameWholeSecond(t *testing.T) {
	for _, row := range []struct {
		name  string
		setup func(*testing.T) openStore
	}{
		{"memory", setupMemory},
		{"redis", setupRedis},
	} {
		t.Run(row.name, func(t *testing.T) {
			st := row.setup(t)(t, testPolicy())
			revokedAt := time.Now().Truncate(time.Second).Add(-2 * time.Second) // exactly on a whole second
			if _, err := st.RevokeUser(context.Background(), "edge", revokedAt); err != nil {
				t.Fatalf("RevokeUser: %v", err)
			}
			same := newTestToken(t, "edge", revokedAt)
			wantStatus(t, mustAccess(t, st, same.request(revokedAt.Add(time.Second), defaultClient)),
				sessions.StatusRevoked, sessions.ReasonRevokedBefore)
			next := newTestToken(t, "edge", revokedAt.Add(time.Second))
			wantStatus(t, mustAccess(t, st, next.request(revokedAt.Add(time.Second), defaultClient)),
				sessions.StatusCreated, "")
		})
	}
}
