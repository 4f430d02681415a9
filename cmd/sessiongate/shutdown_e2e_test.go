package main_test

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/testutil"
)

// During SHUTDOWN_DELAY the load balancer learns from /readyz that the
// process is going away, while requests that still arrive are served.
func TestShutdownDelayServesWhileNotReady(t *testing.T) {
	s := startCoreStack(t, map[string]string{"SHUTDOWN_DELAY": "1500ms"})
	token := testutil.Token(t, "draining-user")
	if resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/before", token, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /before status = %d, body %s", resp.StatusCode, body)
	}

	s.gate.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(time.Second)
	for {
		resp, _ := testutil.Do(t, http.MethodGet, s.gate.AdminURL+"/readyz", "", nil)
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d one second after SIGTERM", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp, body := testutil.Do(t, http.MethodGet, s.gate.URL+"/during", token, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /during the delay status = %d, want 200; body %s", resp.StatusCode, body)
	}

	code, ok := s.gate.Wait(10 * time.Second)
	if !ok {
		t.Fatal("sessiongate did not exit within 10s of SIGTERM")
	}
	if code != 0 {
		t.Errorf("exit status = %d, want 0", code)
	}
}
