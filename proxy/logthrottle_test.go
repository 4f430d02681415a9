package proxy

import (
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestLogThrottleOnePerInterval(t *testing.T) {
	l := newLogThrottle(10 * time.Second)
	start := time.Unix(1000, 0)

	if ok, _ := l.allow("a", start); !ok {
		t.Fatal("first line for a was held back")
	}
	for i := range 3 {
		if ok, _ := l.allow("a", start.Add(time.Duration(i+1)*time.Second)); ok {
			t.Errorf("line %d for a within the interval was let through", i+2)
		}
	}
	if ok, _ := l.allow("b", start.Add(time.Second)); !ok {
		t.Error("first line for another key was held back")
	}
	ok, field := l.allow("a", start.Add(11*time.Second))
	if !ok {
		t.Fatal("line for a after the interval was held back")
	}
	if field.Key != "suppressed_since_last" || field.Integer != 3 {
		t.Errorf("suppressed field = %s=%d, want suppressed_since_last=3", field.Key, field.Integer)
	}
}

// A wrong secret makes every request fail alike. The reason must reach the
// info log once, not once per request and not only at debug level.
func TestGatewayLogsTokenRejectionOncePerInterval(t *testing.T) {
	f := newGatewayFixture(t, nil, nil)
	core, logs := observer.New(zapcore.InfoLevel)
	f.gateway.log = zap.New(core)

	for range 5 {
		w := f.serve(t, http.MethodGet, "/api", "not.a.jwt", nil)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("status = %d, want 401", w.Code)
		}
	}
	got := logs.FilterMessage("token rejected").All()
	if len(got) != 1 {
		t.Fatalf("info lines %q = %d, want 1", "token rejected", len(got))
	}
	if errText, _ := got[0].ContextMap()["error"].(string); errText == "" {
		t.Errorf("token rejected line has no error field: %v", got[0].ContextMap())
	}
}
