package introspect_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/introspect"
)

// scripted answers introspection requests from a script of statuses
// (0 = a good active answer), then good answers, counting calls. Each answer
// takes delay.
type scripted struct {
	mu     sync.Mutex
	script []int
	calls  atomic.Int64
	delay  time.Duration
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	select {
	case <-time.After(s.delay):
	case <-r.Context().Done():
		return
	}
	s.mu.Lock()
	code := 0
	if len(s.script) > 0 {
		code, s.script = s.script[0], s.script[1:]
	}
	s.mu.Unlock()
	switch code {
	case 0:
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"active":true,"aud":"p","exp":%d}`, time.Now().Add(time.Hour).Unix())
	case -1: // connection reset
		conn, _, _ := w.(http.Hijacker).Hijack()
		_ = conn.Close()
	default:
		w.WriteHeader(code)
	}
}

func scriptedClient(t *testing.T, script []int, opts ...introspect.Option) (*scripted, *introspect.Client) {
	t.Helper()
	s := &scripted{script: script}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := introspect.New(srv.URL, clientauth.ClientSecretBasic{ClientID: "a", Secret: "b"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func TestRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		script    []int
		wantErr   bool
		wantCalls int64
	}{
		{"503 twice, then an answer", []int{503, 502}, false, 3},
		{"connection reset, then an answer", []int{-1}, false, 2},
		{"5xx beyond the retries", []int{500, 500, 500, 500}, true, 3},
		{"400 is not retried", []int{400}, true, 1},
		{"429 is not retried", []int{429}, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, c := scriptedClient(t, tt.script, introspect.WithRetries(2, time.Millisecond), introspect.WithoutCache())
			_, err := c.Introspect(context.Background(), "tok")
			if (err != nil) != tt.wantErr || s.calls.Load() != tt.wantCalls {
				t.Errorf("Introspect() err = %v after %d calls; want error %v after %d", err, s.calls.Load(), tt.wantErr, tt.wantCalls)
			}
		})
	}
}

func TestRetriesStayInsideTheDeadline(t *testing.T) {
	t.Parallel()
	s, c := scriptedClient(t, []int{503, 503, 503}, introspect.WithRetries(2, 10*time.Second), introspect.WithTimeout(200*time.Millisecond), introspect.WithoutCache())
	// Each answer takes 120 ms, so a second call can start inside the
	// deadline (when the jittered wait is short) but cannot end inside it.
	s.delay = 120 * time.Millisecond
	start := time.Now()
	_, err := c.Introspect(context.Background(), "tok")
	if !errors.Is(err, introspect.ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Introspect() took %v with a 200ms timeout", d)
	}
	if n := s.calls.Load(); n > 2 {
		t.Errorf("%d calls: retries must not wait past the deadline", n)
	}
}

func TestCircuitBreaker(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s, c := scriptedClient(t, []int{503, 503, 503}, introspect.WithRetries(0, 0), introspect.WithoutCache(),
		introspect.WithCircuitBreaker(3, 10*time.Second), introspect.WithClock(clk.Now))
	for range 3 {
		_, _ = c.Introspect(context.Background(), "tok")
	}
	_, err := c.Introspect(context.Background(), "tok")
	var ue *introspect.UnavailableError
	if !errors.As(err, &ue) || !errors.Is(err, introspect.ErrUnavailable) || introspect.RetryAfter(err) != 10*time.Second {
		t.Fatalf("after 3 failures err = %v (retry after %v), want the breaker open for 10s", err, introspect.RetryAfter(err))
	}
	if n := s.calls.Load(); n != 3 {
		t.Errorf("calls = %d, want 3: an open breaker must not call the server", n)
	}
	clk.Advance(10 * time.Second) // the server is healthy again: the probe closes the breaker
	if _, err := c.Introspect(context.Background(), "tok"); err != nil {
		t.Errorf("probe after the cooldown: err = %v", err)
	}
	if _, err := c.Introspect(context.Background(), "tok"); err != nil || s.calls.Load() != 5 {
		t.Errorf("after a good probe: err = %v, calls = %d; want the breaker closed", err, s.calls.Load())
	}
}

func TestBreakerIgnoresAnswers(t *testing.T) {
	t.Parallel()
	// Inactive tokens and client errors are answers, not outages.
	s, c := scriptedClient(t, []int{400, 400, 400, 400}, introspect.WithoutCache(), introspect.WithCircuitBreaker(2, time.Hour))
	for range 4 {
		_, _ = c.Introspect(context.Background(), "tok")
	}
	if n := s.calls.Load(); n != 4 {
		t.Errorf("calls = %d, want 4: 4xx answers must not open the breaker", n)
	}
}

func TestInFlightLimit(t *testing.T) {
	t.Parallel()
	as, c := newClient(t, introspect.WithMaxInFlight(2, 50*time.Millisecond))
	as.SetDelay(500 * time.Millisecond)
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			_, err := c.Introspect(context.Background(), as.Mint(fakeas.Token{Subject: fmt.Sprint(i), Audience: []string{project}}))
			errs <- err
		}()
	}
	var limited, ok int
	for range 3 {
		err := <-errs
		var ue *introspect.UnavailableError
		switch {
		case err == nil:
			ok++
		case errors.As(err, &ue):
			limited++
		default:
			t.Errorf("unexpected err = %v", err)
		}
	}
	if ok != 2 || limited != 1 {
		t.Errorf("with 2 slots and 3 distinct tokens: %d answered, %d limited; want 2 and 1", ok, limited)
	}
}

func TestNegativeCacheCannotEvictActiveEntries(t *testing.T) {
	t.Parallel()
	as, c := newClient(t, introspect.WithCacheSize(10), introspect.WithNegativeCacheSize(5))
	good := as.Mint(fakeas.Token{Subject: "u", Audience: []string{project}})
	if _, err := c.Introspect(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		_, _ = c.Introspect(context.Background(), fmt.Sprint("junk-", i))
	}
	before := as.Calls()
	if _, err := c.Introspect(context.Background(), good); err != nil || as.Calls() != before {
		t.Errorf("after 100 junk tokens the good token cost %d calls (err %v), want a cache hit", as.Calls()-before, err)
	}
}

func TestStaleIfError(t *testing.T) {
	t.Parallel()
	clk := newClock()
	as, c := newClient(t, introspect.WithClock(clk.Now), introspect.WithMaxTTL(time.Minute), introspect.WithStaleIfError(10*time.Minute), introspect.WithRetries(0, 0))
	tok := as.Mint(fakeas.Token{Subject: "u", Audience: []string{project}, Expiry: clk.Now().Add(5 * time.Minute)})
	if _, err := c.Introspect(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	as.SetFault(func(w http.ResponseWriter) bool { w.WriteHeader(http.StatusServiceUnavailable); return true })
	clk.Advance(2 * time.Minute) // past the max TTL, before exp
	if r, err := c.Introspect(context.Background(), tok); err != nil || r.Subject != "u" {
		t.Errorf("server down, entry stale: %v, %v; want the stale result", r, err)
	}
	clk.Advance(3 * time.Minute) // at exp
	if _, err := c.Introspect(context.Background(), tok); !errors.Is(err, introspect.ErrUnavailable) {
		t.Errorf("server down, token expired: err = %v, want ErrUnavailable: never past exp", err)
	}
}

func TestStaleIfErrorIsOffByDefault(t *testing.T) {
	t.Parallel()
	clk := newClock()
	as, c := newClient(t, introspect.WithClock(clk.Now), introspect.WithMaxTTL(time.Minute), introspect.WithRetries(0, 0))
	tok := as.Mint(fakeas.Token{Subject: "u", Audience: []string{project}})
	_, _ = c.Introspect(context.Background(), tok)
	as.SetFault(func(w http.ResponseWriter) bool { w.WriteHeader(http.StatusServiceUnavailable); return true })
	clk.Advance(time.Minute)
	if _, err := c.Introspect(context.Background(), tok); !errors.Is(err, introspect.ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable once the max TTL passed", err)
	}
}

// A stale answer is not served to a request that was waiting while the
// user was invalidated: the invalidation made during the failing call wins.
func TestStaleIfErrorLosesToAnInvalidationDuringTheCall(t *testing.T) {
	t.Parallel()
	clk := newClock()
	as, c := newClient(t, introspect.WithClock(clk.Now), introspect.WithMaxTTL(time.Minute), introspect.WithStaleIfError(10*time.Minute), introspect.WithRetries(0, 0))
	tok := as.Mint(fakeas.Token{Subject: "u", Audience: []string{project}, Expiry: clk.Now().Add(time.Hour)})
	if _, err := c.Introspect(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute) // past the max TTL: the next request asks the server
	failing := make(chan struct{})
	release := make(chan struct{})
	as.SetFault(func(w http.ResponseWriter) bool {
		close(failing)
		<-release
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	done := make(chan error, 1)
	go func() { _, err := c.Introspect(context.Background(), tok); done <- err }()
	<-failing
	c.InvalidateSubject("u")
	close(release)
	if err := <-done; !errors.Is(err, introspect.ErrUnavailable) {
		t.Errorf("server down, user invalidated during the call: err = %v, want ErrUnavailable, not the stale answer", err)
	}
}
