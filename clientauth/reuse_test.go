package clientauth

import (
	"context"
	"crypto"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
)

// gateSigner counts signatures, and how many run at once; while gate is
// non-nil each signature waits for it to be closed.
type gateSigner struct {
	s             crypto.Signer
	gate          chan struct{}
	started       chan struct{} // receives one value per signature started, if non-nil
	fail          atomic.Bool
	calls, in, hi atomic.Int32
}

func (g *gateSigner) Public() crypto.PublicKey { return g.s.Public() }
func (g *gateSigner) Sign(r io.Reader, d []byte, opts crypto.SignerOpts) ([]byte, error) {
	g.calls.Add(1)
	n := g.in.Add(1)
	defer g.in.Add(-1)
	for {
		h := g.hi.Load()
		if n <= h || g.hi.CompareAndSwap(h, n) {
			break
		}
	}
	if g.started != nil {
		g.started <- struct{}{}
	}
	if g.gate != nil {
		<-g.gate
	}
	if g.fail.Load() {
		return nil, errors.New("hsm unavailable")
	}
	return g.s.Sign(r, d, opts)
}

// fakeClock is a clock tests move by hand; safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

// TestReusedAssertionReplacedBeforeExpiry walks the clock through ten
// lifetimes a second at a time: every assertion handed out has at least 6 s
// (half the renewal margin of a 1 minute lifetime) left, and a new one is
// signed about every 48 s, not per call.
func TestReusedAssertionReplacedBeforeExpiry(t *testing.T) {
	t.Parallel()
	clock := newClock()
	g := &gateSigner{s: testRSAKey(t)}
	p, err := NewPrivateKeyJWT(g, "k", "c", issuer, WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var last string
	for i := 0; i < 600; i++ {
		a, err := p.Assertion()
		if err != nil {
			t.Fatal(err)
		}
		if a != last {
			tok, _ := verify(t, a, testRSAKey(t).Public(), jwa.RS256())
			jti, _ := tok.JwtID()
			if seen[jti] {
				t.Fatalf("jti %q signed twice", jti)
			}
			seen[jti] = true
			last = a
		}
		tok, _ := verify(t, a, testRSAKey(t).Public(), jwa.RS256())
		if exp, _ := tok.Expiration(); exp.Sub(clock.now()) < 6*time.Second {
			t.Fatalf("at +%ds Assertion() handed out an assertion with %v left, want >= 6s", i, exp.Sub(clock.now()))
		}
		clock.add(time.Second)
	}
	if n := g.calls.Load(); n < 12 || n > 13 {
		t.Errorf("%d signatures over 10 minutes, want 12 or 13 (one every 48 s)", n)
	}
}

// TestConcurrentCallsSignOnce: 50 callers with no assertion yet cause one
// signature, which they all share; in the renewal window one caller signs
// while the others keep getting the current assertion without waiting; past
// the point where it is no longer handed out, callers wait for the one
// signature in progress.
func TestConcurrentCallsSignOnce(t *testing.T) {
	t.Parallel()
	clock := newClock()
	g := &gateSigner{s: testRSAKey(t), gate: make(chan struct{}), started: make(chan struct{}, 100)}
	p, err := NewPrivateKeyJWT(g, "k", "c", issuer, WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	call := func(n int) []string {
		out := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				a, err := p.Assertion()
				if err != nil {
					t.Errorf("Assertion() err = %v", err)
				}
				out[i] = a
			})
		}
		<-g.started
		time.Sleep(20 * time.Millisecond) // let the others arrive and wait
		close(g.gate)
		wg.Wait()
		return out
	}
	first := call(50)
	if g.calls.Load() != 1 || g.hi.Load() != 1 {
		t.Fatalf("50 concurrent first calls: %d signatures, %d at once; want 1, 1", g.calls.Load(), g.hi.Load())
	}
	for _, a := range first {
		if a != first[0] {
			t.Fatalf("concurrent first calls got different assertions")
		}
	}

	// Renewal window (50 s into a 60 s lifetime): the signer blocks, the
	// others are served the current assertion meanwhile.
	clock.add(50 * time.Second)
	g.gate = make(chan struct{})
	renewed := make(chan string)
	go func() {
		a, _ := p.Assertion()
		renewed <- a
	}()
	<-g.started
	for range 20 {
		if a, err := p.Assertion(); err != nil || a != first[0] {
			t.Fatalf("Assertion() during renewal = %.20q, %v; want the current one without waiting", a, err)
		}
	}
	close(g.gate)
	next := <-renewed
	if next == first[0] || g.calls.Load() != 2 {
		t.Fatalf("renewal: %d signatures, new == old: %v; want 2 and a new assertion", g.calls.Load(), next == first[0])
	}
	if a, _ := p.Assertion(); a != next {
		t.Errorf("after renewal Assertion() did not return the renewed assertion")
	}

	// 57 s into the second assertion's life (3 s left, under half the
	// 12 s margin): nobody gets it any more; 30 callers share one signature.
	clock.add(57 * time.Second)
	g.gate = make(chan struct{})
	third := call(30)
	if g.calls.Load() != 3 || g.hi.Load() != 1 {
		t.Errorf("30 callers past the stop point: %d signatures in all, %d at once; want 3, 1", g.calls.Load(), g.hi.Load())
	}
	for _, a := range third {
		if a == next || a != third[0] {
			t.Fatalf("callers past the stop point got the expiring or differing assertions")
		}
	}
}

// TestSignatureErrorIsShared: the callers waiting for a failed signature get
// its error; the next call tries again.
func TestSignatureErrorIsShared(t *testing.T) {
	t.Parallel()
	g := &gateSigner{s: testRSAKey(t), gate: make(chan struct{}), started: make(chan struct{}, 100)}
	g.fail.Store(true)
	p, _ := NewPrivateKeyJWT(g, "k", "c", issuer)
	var wg sync.WaitGroup
	var errs atomic.Int32
	for range 10 {
		wg.Go(func() {
			if _, err := p.Assertion(); err != nil && strings.Contains(err.Error(), "hsm unavailable") {
				errs.Add(1)
			}
		})
	}
	<-g.started
	time.Sleep(20 * time.Millisecond)
	close(g.gate)
	wg.Wait()
	if errs.Load() != 10 || g.calls.Load() != 1 {
		t.Fatalf("10 callers, failing signer: %d errors, %d signatures; want 10, 1", errs.Load(), g.calls.Load())
	}
	g.fail.Store(false)
	if _, err := p.Assertion(); err != nil || g.calls.Load() != 2 {
		t.Errorf("after the failure Assertion() = %v with %d signatures; want a new signature", err, g.calls.Load())
	}
}

// countHandler counts log records.
type countHandler struct {
	n   *atomic.Int32
	msg *atomic.Value
}

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	h.n.Add(1)
	h.msg.Store(r.Message)
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

func newCountLogger() (*slog.Logger, *atomic.Int32, *atomic.Value) {
	var n atomic.Int32
	var msg atomic.Value
	return slog.New(countHandler{&n, &msg}), &n, &msg
}

func TestClientAuthRejected(t *testing.T) {
	t.Parallel()
	form := func(p *PrivateKeyJWT) url.Values {
		f := url.Values{}
		if err := p.AuthenticateClient(f, http.Header{}); err != nil {
			t.Fatal(err)
		}
		return f
	}
	t.Run("reused assertion: switch once, retry", func(t *testing.T) {
		t.Parallel()
		logger, logs, msg := newCountLogger()
		p, _ := NewPrivateKeyJWT(testRSAKey(t), "k", "c", issuer, WithLogger(logger))
		f1, f2 := form(p), form(p) // the same assertion, handed out twice
		if !p.ClientAuthRejected(f2, nil) {
			t.Fatalf("ClientAuthRejected(reused assertion) = false, want true")
		}
		if !p.ClientAuthRejected(f1, nil) { // a concurrent request with it
			t.Errorf("ClientAuthRejected(the same reused assertion, another request) = false, want true")
		}
		a, b := form(p), form(p)
		if a.Get("client_assertion") == b.Get("client_assertion") || a.Get("client_assertion") == f1.Get("client_assertion") {
			t.Errorf("after a refusal the assertions are still reused")
		}
		if p.ClientAuthRejected(a, nil) {
			t.Errorf("ClientAuthRejected(fresh assertion) = true, want false: a retry would not help")
		}
		if logs.Load() != 1 || !strings.Contains(msg.Load().(string), "fresh assertion for every request") {
			t.Errorf("logged %d times (%v), want once about the switch", logs.Load(), msg.Load())
		}
	})
	t.Run("assertion used once: no retry", func(t *testing.T) {
		t.Parallel()
		logger, logs, _ := newCountLogger()
		p, _ := NewPrivateKeyJWT(testRSAKey(t), "k", "c", issuer, WithLogger(logger))
		if p.ClientAuthRejected(form(p), nil) {
			t.Errorf("ClientAuthRejected(assertion used once) = true, want false: no replay happened, the key is at fault")
		}
		if f1, f2 := form(p), form(p); f1.Get("client_assertion") != f2.Get("client_assertion") {
			t.Errorf("a refusal of a first use switched to fresh assertions")
		}
		if logs.Load() != 0 {
			t.Errorf("logged %d times, want 0", logs.Load())
		}
	})
	t.Run("fresh mode, foreign and empty forms", func(t *testing.T) {
		t.Parallel()
		p, _ := NewPrivateKeyJWT(testRSAKey(t), "k", "c", issuer, WithFreshAssertions())
		q, _ := NewPrivateKeyJWT(testRSAKey(t), "k", "c", issuer)
		fq := form(q)
		_ = form(q)
		for name, f := range map[string]url.Values{"fresh": form(p), "another client's": fq, "empty": {}} {
			if p.ClientAuthRejected(f, nil) {
				t.Errorf("ClientAuthRejected(%s form) = true, want false", name)
			}
		}
	})
	t.Run("WithReuse undoes WithFreshAssertions", func(t *testing.T) {
		t.Parallel()
		p, _ := NewPrivateKeyJWT(testRSAKey(t), "k", "c", issuer, WithFreshAssertions(), WithReuse())
		if a, b := form(p), form(p); a.Get("client_assertion") != b.Get("client_assertion") {
			t.Errorf("WithFreshAssertions(), WithReuse() signs per call, want reuse")
		}
	})
}

// replayRefusingServer is an introspection endpoint that checks the
// assertion's signature and refuses any jti it has seen before, as servers
// enforcing RFC 7523 §3 item 7 do.
func replayRefusingServer(t *testing.T, pub crypto.PublicKey) (*httptest.Server, *atomic.Int32) {
	var (
		mu      sync.Mutex
		seen    = map[string]bool{}
		refused atomic.Int32
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := r.PostFormValue("client_assertion")
		tok, _ := verify(t, a, pub, jwa.RS256())
		jti, _ := tok.JwtID()
		mu.Lock()
		replay := seen[jti]
		seen[jti] = true
		mu.Unlock()
		if replay {
			refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client","error_description":"assertion replayed"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"active":true}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &refused
}

// TestServerRefusingReusedAssertions drives a server that refuses replayed
// jti values the way package introspect does (on a client authentication
// error, ask ClientAuthRejected, retry once if it says so): every call gets
// an answer, with one refusal in all.
func TestServerRefusingReusedAssertions(t *testing.T) {
	t.Parallel()
	srv, refused := replayRefusingServer(t, testRSAKey(t).Public())
	logger, logs, _ := newCountLogger()
	p, _ := NewPrivateKeyJWT(testRSAKey(t), "k", "c", issuer, WithLogger(logger))
	post := func() (int, url.Values) {
		f := url.Values{"token": {"t"}}
		if err := p.AuthenticateClient(f, http.Header{}); err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().PostForm(srv.URL, f)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, f
	}
	for i := range 5 {
		code, f := post()
		if code == http.StatusUnauthorized && p.ClientAuthRejected(f, nil) {
			code, _ = post()
		}
		if code != http.StatusOK {
			t.Fatalf("call %d: status %d, want 200", i, code)
		}
	}
	if refused.Load() != 1 || logs.Load() != 1 {
		t.Errorf("%d refusals and %d log lines, want 1 and 1", refused.Load(), logs.Load())
	}
}
