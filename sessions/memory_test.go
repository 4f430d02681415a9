package sessions_test

import (
	"context"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/sessions"
)

// MemoryStore judges every expiry by the time passed in, so these cases
// move the clock instead of sleeping.

func TestMemoryStoreExpiresByPassedTime(t *testing.T) {
	p := testPolicy()
	st := sessions.NewMemoryStore(p)
	t0 := time.Now().Truncate(time.Second)
	tk := newTestToken(t, "wendy", t0)

	wantStatus(t, mustAccess(t, st, tk.request(t0, defaultClient)), sessions.StatusCreated, "")
	res := mustAccess(t, st, tk.request(t0.Add(50*time.Second), defaultClient))
	wantStatus(t, res, sessions.StatusActive, "")
	if want := t0.Add(50*time.Second + p.Lifetime); !res.Session.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt after refresh = %v, want %v", res.Session.ExpiresAt, want)
	}

	idle := t0.Add(50*time.Second + p.Lifetime)
	if ids := listIDs(t, st, tk.userID, idle.Add(-time.Millisecond)); len(ids) != 1 {
		t.Errorf("List a millisecond before expiry = %v, want the session", ids)
	}
	if ids := listIDs(t, st, tk.userID, idle); len(ids) != 0 {
		t.Errorf("List at expiry = %v, want none", ids)
	}
	wantStatus(t, mustAccess(t, st, tk.request(idle, defaultClient)), sessions.StatusExpired, sessions.ReasonCreateWindow)
}

// Without Redis to expire keys, the sweep is what keeps a long-running
// process from holding every revoked or expired session forever.
func TestMemoryStoreSweepForgetsExpiredState(t *testing.T) {
	p := testPolicy()
	st := sessions.NewMemoryStore(p)
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Second)

	revoked := newTestToken(t, "xena", t0)
	revoked.expiresAt = t0.Add(10 * time.Minute)
	idle := newTestToken(t, "yuri", t0)
	allGone := newTestToken(t, "zoe", t0)
	for _, tk := range []testToken{revoked, idle, allGone} {
		wantStatus(t, mustAccess(t, st, tk.request(t0, defaultClient)), sessions.StatusCreated, "")
	}
	if err := st.Revoke(ctx, revoked.userID, revoked.sessionID, t0); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, err := st.RevokeUser(ctx, allGone.userID, t0); err != nil {
		t.Fatalf("RevokeUser: %v", err)
	}

	// Before the marker ends, it is kept and still rejects the token.
	early, err := st.Sweep(ctx, t0.Add(5*time.Minute))
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if early.Remaining != 2 {
		t.Errorf("Sweep Remaining before the markers end = %d, want the 2 markers", early.Remaining)
	}
	wantStatus(t, mustAccess(t, st, revoked.request(t0.Add(5*time.Minute), defaultClient)), sessions.StatusRevoked, sessions.ReasonMarker)

	late, err := st.Sweep(ctx, t0.Add(time.Hour+p.MaxMarkerTTL))
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if late.Remaining != 0 || late.Sessions != 0 || late.Users != 0 {
		t.Errorf("Sweep after everything ended = remaining %d, sessions %d, users %d, want all 0", late.Remaining, late.Sessions, late.Users)
	}
	after, err := st.Sweep(ctx, t0.Add(2*time.Hour+p.MaxMarkerTTL))
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if after.Found != 0 {
		t.Errorf("Sweep Found after state was forgotten = %d, want 0", after.Found)
	}
}
