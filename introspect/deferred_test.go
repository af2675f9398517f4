package introspect_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/introspect"
)

// A Client made while the authorization server is down answers 503-kind
// errors without calling anyone, retries resolution within the backoff, and
// serves once resolution succeeds.
func TestNewDeferred(t *testing.T) {
	t.Parallel()
	as := fakeas.Start()
	t.Cleanup(as.Close)
	keyJSON, _ := as.NewApp(project)
	key, _ := clientauth.ParseKey(keyJSON)
	auth, _ := key.PrivateKeyJWT(as.Issuer)

	var up atomic.Bool
	var attempts atomic.Int64
	resolve := func(ctx context.Context) (string, error) {
		attempts.Add(1)
		if !up.Load() {
			return "", errors.New("dial tcp: connection refused")
		}
		return as.Issuer + fakeas.IntrospectPath, nil
	}
	clk := newClock()
	c, err := introspect.NewDeferred(resolve, auth, introspect.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	if attempts.Load() != 0 {
		t.Error("NewDeferred made an attempt: it must not touch the network")
	}
	tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})

	// Down: every call fails at once, matching ErrNotReady and ErrUnavailable, with a Retry-After.
	if err := c.Ready(context.Background()); !errors.Is(err, introspect.ErrNotReady) {
		t.Fatalf("Ready() while down = %v, want ErrNotReady", err)
	}
	for range 50 {
		_, err := c.Introspect(context.Background(), tok)
		if !errors.Is(err, introspect.ErrNotReady) || !errors.Is(err, introspect.ErrUnavailable) || introspect.RetryAfter(err) <= 0 {
			t.Fatalf("Introspect() while down: err = %v (retry after %v), want ErrNotReady, ErrUnavailable and a Retry-After", err, introspect.RetryAfter(err))
		}
	}
	waitIdle(t, c)
	if n := attempts.Load(); n != 1 {
		t.Errorf("%d resolution attempts within the first backoff, want 1", n)
	}
	if as.Calls() != 0 {
		t.Errorf("%d introspections before the endpoint was known", as.Calls())
	}
	if c.Endpoint() != "" {
		t.Errorf("Endpoint() = %q before resolution, want empty", c.Endpoint())
	}

	// Up: after the backoff, Ready resolves and requests are served.
	up.Store(true)
	clk.Advance(introspect.DeferredBackoffMax)
	if err := c.Ready(context.Background()); err != nil {
		t.Fatalf("Ready() once up = %v", err)
	}
	if _, err := c.Introspect(context.Background(), tok); err != nil {
		t.Fatalf("Introspect() once ready: %v", err)
	}
	if c.Endpoint() != as.Issuer+fakeas.IntrospectPath {
		t.Errorf("Endpoint() = %q", c.Endpoint())
	}
	n := attempts.Load()
	_ = c.Ready(context.Background())
	if attempts.Load() != n {
		t.Error("Ready() after success made another attempt")
	}
}

// An endpoint that breaks New's rules is a failed attempt, not a Client
// that sends tokens over plain http.
func TestNewDeferredChecksTheEndpoint(t *testing.T) {
	t.Parallel()
	clk := newClock()
	c, err := introspect.NewDeferred(func(context.Context) (string, error) {
		return "http://auth.example.com/oauth/v2/introspect", nil
	}, clientauth.ClientSecretBasic{ClientID: "a", Secret: "b"}, introspect.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Ready(context.Background())
	if !errors.Is(err, introspect.ErrNotReady) || c.Endpoint() != "" {
		t.Errorf("Ready() with a plain-http endpoint off loopback = %v, endpoint %q; want ErrNotReady and no endpoint", err, c.Endpoint())
	}
	if _, err := introspect.NewDeferred(nil, clientauth.ClientSecretBasic{ClientID: "a", Secret: "b"}); err == nil {
		t.Error("NewDeferred(nil) err = nil")
	}
}

// Ready gives up when its context does, and concurrent probes make one
// attempt at a time.
func TestReadyHonoursItsContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var running, most atomic.Int64
	var mu sync.Mutex
	c, err := introspect.NewDeferred(func(ctx context.Context) (string, error) {
		n := running.Add(1)
		defer running.Add(-1)
		mu.Lock()
		most.Store(max(most.Load(), n))
		mu.Unlock()
		select {
		case <-release:
		case <-ctx.Done():
		}
		return "", errors.New("still down")
	}, clientauth.ClientSecretBasic{ClientID: "a", Secret: "b"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if err := c.Ready(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Ready() with a 50 ms context and a hung resolver = %v, want DeadlineExceeded", err)
			}
		})
	}
	wg.Wait()
	close(release)
	waitIdle(t, c)
	if most.Load() != 1 {
		t.Errorf("%d attempts ran at once, want 1", most.Load())
	}
}

// waitIdle waits until no resolution attempt runs (for goleak).
func waitIdle(t *testing.T, c *introspect.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Ready(ctx) // returns when the running attempt ends
}

// TestCloseStopsDeferredResolution: Close ends the running attempt to find
// the endpoint (its context is cancelled, and Close waits for it), and no
// attempt starts after Close, whatever calls come.
func TestCloseStopsDeferredResolution(t *testing.T) {
	t.Parallel()
	var attempts, running atomic.Int64
	started := make(chan struct{}, 1)
	resolve := func(ctx context.Context) (string, error) {
		attempts.Add(1)
		running.Add(1)
		defer running.Add(-1)
		started <- struct{}{}
		<-ctx.Done() // an authorization server that never answers
		return "", ctx.Err()
	}
	c, err := introspect.NewDeferred(resolve, clientauth.ClientSecretBasic{ClientID: "a", Secret: "b"}, introspect.WithTimeout(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Ready(context.Background()) }()
	<-started
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close() = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close() did not end the running attempt")
	}
	if n := running.Load(); n != 0 {
		t.Errorf("%d attempts still running after Close", n)
	}
	for range 3 {
		if _, err := c.Introspect(context.Background(), "tok"); !errors.Is(err, introspect.ErrUnavailable) {
			t.Errorf("Introspect after Close = %v, want ErrUnavailable", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := c.Ready(ctx); !errors.Is(err, introspect.ErrNotReady) || ctx.Err() != nil {
			t.Errorf("Ready after Close = %v, want ErrNotReady at once", err)
		}
		cancel()
	}
	if n := attempts.Load(); n != 1 {
		t.Errorf("%d attempts, want 1: none after Close", n)
	}
}
