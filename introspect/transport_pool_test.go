package introspect

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/clientauth"
)

// tlsAS is an introspection endpoint over TLS that counts TLS handshakes
// (ClientHellos) and the protocol of each request; every answer takes delay.
type tlsAS struct {
	*httptest.Server
	handshakes, h2 atomic.Int64
}

func newTLSAS(t *testing.T, http2 bool, delay time.Duration) *tlsAS {
	t.Helper()
	as := &tlsAS{}
	as.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 {
			as.h2.Add(1)
		}
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"active":true,"aud":"p","sub":"u","exp":%d}`, time.Now().Add(time.Hour).Unix())
	}))
	as.EnableHTTP2 = http2
	as.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		as.handshakes.Add(1)
		return nil, nil // go on with the server's own config
	}}
	as.StartTLS()
	t.Cleanup(as.Close)
	return as
}

// trusting returns tr set up to trust as's certificate, as a deployment
// with a private CA would set it up.
func trusting(tr *http.Transport, as *tlsAS) *http.Transport {
	tr.TLSClientConfig = as.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	return tr
}

// bursts sends n bursts of conc concurrent misses (distinct tokens).
func bursts(t *testing.T, c *Client, n, conc int) {
	t.Helper()
	for b := range n {
		var wg sync.WaitGroup
		for i := range conc {
			wg.Go(func() {
				if _, err := c.Introspect(context.Background(), fmt.Sprintf("tok-%d-%d", b, i)); err != nil {
					t.Errorf("Introspect() err = %v", err)
				}
			})
		}
		wg.Wait()
	}
}

// TestDefaultTransportKeepsItsConnections: bursts of 32 concurrent misses
// over TLS. After the first burst has dialled, the default transport reuses
// its connections: later bursts cost no handshake. Over HTTP/2 (after one
// request, so that the burst finds the connection up) all of them share
// one connection. http.DefaultTransport, which keeps 2 idle connections per
// host, closes the rest after each burst and pays a TLS handshake for most
// requests of every later one.
func TestDefaultTransportKeepsItsConnections(t *testing.T) {
	t.Parallel()
	const conc = 32
	for _, tt := range []struct {
		name   string
		tr     func() *http.Transport
		http2  bool
		warm   int64 // at most this many handshakes in the first burst
		lo, hi int64 // and from lo to hi in the later ones
	}{
		// Not 0: a burst that starts the moment the last one ended can find
		// connections not yet back in the pool, and dial; on a loaded
		// machine a few do (4 in 2 bursts, once). A quarter of a burst is
		// still far from http.DefaultTransport's one per request.
		{"NewTransport, HTTP/1.1", NewTransport, false, conc, 0, conc / 4},
		{"NewTransport, HTTP/2", NewTransport, true, 1, 0, 0},
		{"http.DefaultTransport, HTTP/1.1", func() *http.Transport { return http.DefaultTransport.(*http.Transport).Clone() }, false, conc, conc, 2 * conc},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			as := newTLSAS(t, tt.http2, 20*time.Millisecond)
			tr := trusting(tt.tr(), as)
			defer tr.CloseIdleConnections()
			// No retries, and time enough for slow handshakes on a loaded
			// machine: a retry after an attempt timeout would dial again.
			c, err := New(as.URL, clientauth.ClientSecretBasic{ClientID: "a", Secret: "b"}, WithoutCache(), WithHTTPClient(&http.Client{Transport: tr}),
				WithRetries(0, 0), WithTimeout(time.Minute), WithAttemptTimeout(time.Minute), WithMaxInFlight(DefaultMaxInFlight, time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if tt.http2 {
				bursts(t, c, 1, 1) // one connection, before any concurrency
			}
			bursts(t, c, 1, conc)
			warm := as.handshakes.Load()
			bursts(t, c, 2, conc)
			later := as.handshakes.Load() - warm
			t.Logf("handshakes: %d in the first burst, %d in the 2 later ones", warm, later)
			if warm < 1 || warm > tt.warm {
				t.Errorf("first burst of %d misses: %d TLS handshakes, want 1 to %d", conc, warm, tt.warm)
			}
			if later < tt.lo || later > tt.hi {
				t.Errorf("2 later bursts of %d misses: %d TLS handshakes, want %d to %d", conc, later, tt.lo, tt.hi)
			}
			if h2 := as.h2.Load(); tt.http2 != (h2 > 0) || tt.http2 && h2 != 3*conc+1 {
				t.Errorf("%d HTTP/2 requests, server offering HTTP/2: %v", h2, tt.http2)
			}
		})
	}
}

// TestHTTPClientDefaultAndGiven: without WithHTTPClient the Client runs on a
// transport from NewTransport; a client passed in keeps its own transport.
func TestHTTPClientDefaultAndGiven(t *testing.T) {
	t.Parallel()
	auth := clientauth.ClientSecretBasic{ClientID: "a", Secret: "b"}
	c, err := New("https://as.example/introspect", auth)
	if err != nil {
		t.Fatal(err)
	}
	tr, ok := c.cfg.httpClient.Transport.(*http.Transport)
	if !ok || tr.MaxIdleConnsPerHost != DefaultMaxIdleConnsPerHost || !tr.ForceAttemptHTTP2 || tr.Proxy == nil {
		t.Errorf("default transport = %T %+v, want NewTransport's", c.cfg.httpClient.Transport, tr)
	}
	if c.cfg.httpClient.Timeout != 0 {
		t.Errorf("default client Timeout = %v, want 0 (WithTimeout bounds calls)", c.cfg.httpClient.Timeout)
	}
	c2, _ := New("https://as.example/introspect", auth)
	if c2.cfg.httpClient.Transport == c.cfg.httpClient.Transport {
		t.Errorf("two Clients share one default transport, want one each")
	}
	given := &http.Client{Transport: http.DefaultTransport, Timeout: 3 * time.Second}
	c3, _ := New("https://as.example/introspect", auth, WithHTTPClient(given))
	if c3.cfg.httpClient.Transport != http.DefaultTransport || c3.cfg.httpClient.Timeout != 3*time.Second {
		t.Errorf("WithHTTPClient: transport %T, timeout %v; want the given client's", c3.cfg.httpClient.Transport, c3.cfg.httpClient.Timeout)
	}
}

// rejectionRecorder is a RejectionHandler that answers want and records
// what it was given.
type rejectionRecorder struct {
	clientauth.ClientSecretBasic
	want  bool
	calls int
	form  url.Values
}

func (r *rejectionRecorder) ClientAuthRejected(form url.Values, _ http.Header) bool {
	r.calls++
	r.form = form
	return r.want
}

func TestRetryWithNewCredentials(t *testing.T) {
	t.Parallel()
	refused := &Error{StatusCode: http.StatusUnauthorized, Code: "invalid_client"}
	form := url.Values{"client_assertion": {"a"}}
	tests := []struct {
		name      string
		auth      ClientAuthenticator
		err       error
		want      bool
		wantCalls int
	}{
		{"handler asks for a retry", &rejectionRecorder{want: true}, refused, true, 1},
		{"handler declines", &rejectionRecorder{}, refused, false, 1},
		{"wrapped refusal", &rejectionRecorder{want: true}, fmt.Errorf("x: %w", refused), true, 1},
		{"not a client auth error", &rejectionRecorder{want: true}, &Error{StatusCode: 500}, false, 0},
		{"unavailable", &rejectionRecorder{want: true}, errors.New("introspect: dial"), false, 0},
		{"no handler", clientauth.ClientSecretBasic{}, refused, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := retryWithNewCredentials(tt.auth, tt.err, form, http.Header{}); got != tt.want {
				t.Errorf("retryWithNewCredentials(%v) = %v, want %v", tt.err, got, tt.want)
			}
			if r, ok := tt.auth.(*rejectionRecorder); ok && (r.calls != tt.wantCalls || (r.calls > 0 && r.form.Get("client_assertion") != "a")) {
				t.Errorf("ClientAuthRejected called %d times with %v, want %d with the refused form", r.calls, r.form, tt.wantCalls)
			}
		})
	}
}
