package introspect

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/clientauth"
)

// TestBackoffNeverOverflows: the wait before a retry stays in (0, 1s] for any
// attempt number and base.
func TestBackoffNeverOverflows(t *testing.T) {
	t.Parallel()
	for _, base := range []time.Duration{time.Nanosecond, time.Millisecond, 50 * time.Millisecond, time.Second, time.Hour, 1<<63 - 1} {
		for attempt := range 2000 {
			if d := maxBackoff(base, attempt); d <= 0 || d > time.Second {
				t.Fatalf("maxBackoff(%v, %d) = %v, want (0, 1s]", base, attempt, d)
			}
		}
	}
}

// TestProbeReleasedOnEveryExit: when the breaker lets one call probe the
// server and that call ends without an answer of the server's making (the
// in-flight limit, its caller hanging up), the next call may probe.
func TestProbeReleasedOnEveryExit(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":true}`))
	}))
	t.Cleanup(srv.Close)
	now := time.Now()
	clock := func() time.Time { return now }
	c, err := New(srv.URL, clientauth.ClientSecretBasic{ClientID: "a", Secret: "b"}, WithoutCache(),
		WithMaxInFlight(1, time.Millisecond), WithCircuitBreaker(1, time.Second), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	halfOpen := func() {
		c.breaker.mu.Lock()
		c.breaker.failures, c.breaker.openUntil, c.breaker.probing = 1, now, false // cooldown just over
		c.breaker.mu.Unlock()
	}

	halfOpen()
	c.sem <- struct{}{} // every slot taken
	_, err = c.Introspect(context.Background(), "tok")
	<-c.sem
	var ue *UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("probe with no slot: err = %v, want the in-flight limit", err)
	}
	if _, err := c.Introspect(context.Background(), "tok"); err != nil {
		t.Errorf("after a probe that found no slot: err = %v; want the next call to probe", err)
	}

	halfOpen()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Introspect(ctx, "tok"); !errors.Is(err, context.Canceled) {
		t.Fatalf("probe by a caller that hung up: err = %v", err)
	}
	if _, err := c.Introspect(context.Background(), "tok"); err != nil {
		t.Errorf("after a probe whose caller hung up: err = %v; want the next call to probe", err)
	}
}
