package introspect_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/introspect"
)

var secretAuth = clientauth.ClientSecretBasic{ClientID: "api", Secret: "s3cret"}

// counter is a listener that would happily accept what a redirect sends it:
// it answers every request as an introspection endpoint would for an
// active token, and counts what it receives.
type counter struct {
	calls atomic.Int64
	*httptest.Server
}

func newCounter(t *testing.T) *counter {
	t.Helper()
	c := &counter{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"active":true,"aud":"p","sub":"attacker","exp":%d}`, time.Now().Add(time.Hour).Unix())
	}))
	t.Cleanup(c.Close)
	return c
}

// redirector answers every request with code and a Location on to.
func redirector(code int, to string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Location", to)
		w.WriteHeader(code)
	})
}

// TestRedirectsAreNotFollowed: the token and the client's credentials go to
// the configured endpoint and nowhere else. A 307 or 308 would re-POST both
// to the Location; a 301, 302 or 303 would let another host's answer stand
// as the introspection result.
func TestRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	for _, code := range []int{301, 302, 303, 307, 308} {
		for _, tls := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d tls=%v", code, tls), func(t *testing.T) {
				t.Parallel()
				other := newCounter(t)
				var srv *httptest.Server
				var opts []introspect.Option
				var hc *http.Client
				if tls { // https to plain http, with the caller's own client
					srv = httptest.NewTLSServer(redirector(code, other.URL+"/introspect?from=redirect"))
					hc = srv.Client()
					opts = append(opts, introspect.WithHTTPClient(hc))
				} else {
					srv = httptest.NewServer(redirector(code, other.URL+"/introspect?from=redirect"))
				}
				t.Cleanup(srv.Close)
				c, err := introspect.New(srv.URL+"/introspect", secretAuth, append(opts, introspect.WithRetries(0, 0))...)
				if err != nil {
					t.Fatal(err)
				}
				r, err := c.Introspect(context.Background(), "tok-"+fmt.Sprint(code))
				var re *introspect.RedirectError
				if !errors.Is(err, introspect.ErrUnavailable) || !errors.As(err, &re) || re.StatusCode != code {
					t.Fatalf("Introspect() = %v, %v; want a RedirectError for %d matching ErrUnavailable", r, err, code)
				}
				if n := other.calls.Load(); n != 0 {
					t.Errorf("the redirect's target received %d requests, want 0", n)
				}
				if msg := err.Error(); !strings.Contains(msg, "does not follow redirects") || !strings.Contains(msg, other.Listener.Addr().String()) || strings.Contains(msg, "from=redirect") {
					t.Errorf("err = %q, want it to name the target host and say redirects are not followed, without the query", msg)
				}
				if hc != nil && hc.CheckRedirect != nil {
					t.Error("New changed the caller's http.Client")
				}
			})
		}
	}
}

func TestPlainHTTPEndpoint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		endpoint string
		allow    bool
		wantErr  bool
	}{
		{"http://zitadel.example.com/oauth/v2/introspect", false, true},
		{"http://zitadel.example.com/oauth/v2/introspect", true, false},
		{"http://127.0.0.1.example.com/introspect", false, true},
		{"http://localhost.example.com/introspect", false, true},
		{"http://10.0.0.7:8080/introspect", false, true},
		{"https://zitadel.example.com/oauth/v2/introspect", false, false},
		{"http://localhost:8080/introspect", false, false},
		{"http://LocalHost:8080/introspect", false, false},
		{"http://127.0.0.1:8080/introspect", false, false},
		{"http://127.1.2.3/introspect", false, false},
		{"http://[::1]:8080/introspect", false, false},
		{"ftp://zitadel.example.com/introspect", true, true},
	}
	for _, tt := range tests {
		var opts []introspect.Option
		if tt.allow {
			opts = append(opts, introspect.WithInsecureAllowHTTP())
		}
		_, err := introspect.New(tt.endpoint, secretAuth, opts...)
		if (err != nil) != tt.wantErr {
			t.Errorf("New(%q, allow http %v) err = %v, want error %v", tt.endpoint, tt.allow, err, tt.wantErr)
		}
		if err != nil && strings.HasPrefix(tt.endpoint, "http:") && !strings.Contains(err.Error(), "WithInsecureAllowHTTP") {
			t.Errorf("New(%q) err = %v, want it to say how to allow plain http", tt.endpoint, err)
		}
	}
}

// TestCallersThatHangUpDoNotOpenTheBreaker: a caller that gives up is not
// the server failing; five of them must not shut the server off for
// everyone else.
func TestCallersThatHangUpDoNotOpenTheBreaker(t *testing.T) {
	t.Parallel()
	hangUps := map[string]func() (context.Context, context.CancelFunc){
		"cancelled before the call": func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		},
		"cancelled during the call": func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(20*time.Millisecond, cancel)
			return ctx, cancel
		},
		"its own deadline, before the client's timeout": func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 20*time.Millisecond)
		},
	}
	for name, hangUp := range hangUps {
		for _, cached := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s cache=%v", name, cached), func(t *testing.T) {
				t.Parallel()
				opts := []introspect.Option{introspect.WithCircuitBreaker(5, time.Hour), introspect.WithRetries(0, 0)}
				if !cached {
					opts = append(opts, introspect.WithoutCache())
				}
				s, c := scriptedClient(t, nil, opts...)
				s.delay = 200 * time.Millisecond
				for i := range 5 {
					ctx, cancel := hangUp()
					_, err := c.Introspect(ctx, fmt.Sprint("tok-", i))
					cancel()
					if errors.Is(err, introspect.ErrUnavailable) || !(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
						t.Errorf("Introspect() by a caller that hung up: err = %v; want its context's error, not ErrUnavailable", err)
					}
				}
				before := s.calls.Load()
				if _, err := c.Introspect(context.Background(), "tok-6"); err != nil {
					t.Errorf("the 6th call, patient: err = %v; want an answer", err)
				}
				if s.calls.Load() == before {
					t.Error("the 6th call never reached the server")
				}
			})
		}
	}
}

// TestHungServerFreesSlotsAtTheAttemptDeadline: attempts that hang hold
// their in-flight slot until the attempt deadline, not the whole call
// timeout, so new tokens get their turn.
func TestHungServerFreesSlotsAtTheAttemptDeadline(t *testing.T) {
	t.Parallel()
	var inFlight, maxInFlight, hung atomic.Int64
	// Requests in flight as the client sees them: the server may notice an
	// abandoned request a moment after the client has moved on.
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.PostFormValue("token"), "hang") {
			hung.Add(1)
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":true,"aud":"p"}`))
	}))
	t.Cleanup(srv.Close)
	c, err := introspect.New(srv.URL, secretAuth, introspect.WithHTTPClient(hc), introspect.WithMaxInFlight(2, 5*time.Second),
		introspect.WithAttemptTimeout(100*time.Millisecond), introspect.WithRetries(2, time.Millisecond), introspect.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	hungErrs := make(chan error, 2)
	for i := range 2 {
		go func() {
			_, err := c.Introspect(context.Background(), fmt.Sprint("hang-", i))
			hungErrs <- err
		}()
	}
	for hung.Load() < 2 { // both slots taken by hung attempts
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	for i := range 4 {
		if _, err := c.Introspect(context.Background(), fmt.Sprint("new-", i)); err != nil {
			t.Errorf("Introspect(new-%d) while the server hangs for others: err = %v; want an answer once a slot frees", i, err)
		}
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("new tokens waited %v for a slot with 100ms attempts", d)
	}
	for range 2 {
		if err := <-hungErrs; !errors.Is(err, introspect.ErrUnavailable) || !strings.Contains(err.Error(), "attempt") {
			t.Errorf("hung call: err = %v; want ErrUnavailable naming the attempt timeout", err)
		}
	}
	if hung.Load() != 6 {
		t.Errorf("hung calls made %d attempts, want 3 each: an attempt timeout is retried", hung.Load())
	}
	if m := maxInFlight.Load(); m > 2 {
		t.Errorf("%d requests in flight at once, limit 2", m)
	}
}

// TestFloodOfNewTokensSparesCachedOnes: what the in-flight limit protects
// and what it does not. While new tokens keep every slot busy, the server
// sees no more requests than the limit and further new tokens are refused
// (503); a token already cached is answered without asking.
func TestFloodOfNewTokensSparesCachedOnes(t *testing.T) {
	t.Parallel()
	var calls, hung atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if strings.HasPrefix(r.PostFormValue("token"), "flood") {
			hung.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"active":false}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":true,"aud":"p"}`))
	}))
	t.Cleanup(srv.Close)
	c, err := introspect.New(srv.URL, secretAuth, introspect.WithMaxInFlight(2, 20*time.Millisecond), introspect.WithRetries(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Introspect(context.Background(), "cached"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	for i := range 2 {
		go func() {
			_, err := c.Introspect(context.Background(), fmt.Sprint("flood-", i))
			done <- err
		}()
	}
	for hung.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	var ue *introspect.UnavailableError
	if _, err := c.Introspect(context.Background(), "flood-2"); !errors.As(err, &ue) || introspect.RetryAfter(err) != time.Second {
		t.Errorf("a third new token with both slots busy: err = %v, want the in-flight limit (retry after 1s)", err)
	}
	before := calls.Load()
	if _, err := c.Introspect(context.Background(), "cached"); err != nil || calls.Load() != before {
		t.Errorf("cached token during the flood: err = %v, %d calls; want a cache hit", err, calls.Load()-before)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("the server saw %d requests, want 3: one for the cached token, one per slot", n)
	}
	close(release)
	for range 2 {
		if err := <-done; !errors.Is(err, introspect.ErrInactive) {
			t.Errorf("flood token: err = %v, want ErrInactive", err)
		}
	}
}

// TestManyRetriesDoNotPanic: a large retry count must not overflow the
// backoff (a panic inside a singleflight flight would crash the process):
// New refuses it, or every retry is made. TestBackoffNeverOverflows checks
// the backoff itself for 2,000 attempts.
func TestManyRetriesDoNotPanic(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1000, introspect.MaxRetries} {
		synctest.Test(t, func(t *testing.T) {
			var calls atomic.Int64
			hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				calls.Add(1)
				return &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
			})}
			c, err := introspect.New("https://as.example.com/introspect", secretAuth, introspect.WithHTTPClient(hc),
				introspect.WithRetries(n, time.Nanosecond), introspect.WithTimeout(24*time.Hour), introspect.WithCircuitBreaker(0, 0))
			if err != nil {
				if n <= introspect.MaxRetries {
					t.Fatalf("New(WithRetries(%d)) err = %v", n, err)
				}
				return // refusing is fine; panicking is not
			}
			if _, err := c.Introspect(context.Background(), "tok"); !errors.Is(err, introspect.ErrUnavailable) {
				t.Errorf("Introspect() with %d retries: err = %v, want ErrUnavailable", n, err)
			}
			if got := calls.Load(); got != int64(n+1) {
				t.Errorf("%d requests with %d retries, want %d", got, n, n+1)
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
