package introspect_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/introspect"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

const project = "311111111111111111"

// newClient starts a fake AS with one API app of project and returns a
// Client that authenticates with the app's key.
func newClient(t *testing.T, opts ...introspect.Option) (*fakeas.Server, *introspect.Client) {
	t.Helper()
	as := fakeas.Start()
	t.Cleanup(as.Close)
	keyJSON, _ := as.NewApp(project)
	return as, clientFor(t, as, keyJSON, opts...)
}

// clientFor returns a Client of as that authenticates with keyJSON.
func clientFor(t testing.TB, as *fakeas.Server, keyJSON []byte, opts ...introspect.Option) *introspect.Client {
	t.Helper()
	key, err := clientauth.ParseKey(keyJSON)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := key.PrivateKeyJWT(as.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := introspect.New(as.Issuer+fakeas.IntrospectPath, auth, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIntrospectActive(t *testing.T) {
	t.Parallel()
	as, c := newClient(t)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	tok := as.Mint(fakeas.Token{
		Subject: "user-1", ClientID: "svc@" + project, Username: "svc", OrgID: "org-1",
		Audience: []string{project}, Scopes: []string{"openid", "profile"}, Expiry: exp,
		Roles: map[string]map[string]string{"admin": {"org-1": "acme.example"}},
		Extra: map[string]any{"custom": "kept"},
	})
	r, err := c.Introspect(context.Background(), tok)
	if err != nil {
		t.Fatalf("Introspect() err = %v", err)
	}
	if !r.Active || r.Subject != "user-1" || r.Username != "svc" || r.OrgID != "org-1" || r.ClientID != "svc@"+project {
		t.Errorf("Introspect() = %+v", r)
	}
	if !r.Expiration.AsTime().Equal(exp) {
		t.Errorf("exp = %v, want %v", r.Expiration.AsTime(), exp)
	}
	if !r.RolesFor(project).HasInOrg("admin", "org-1") || r.RolesFor(project).Has("reader") {
		t.Errorf("RolesFor(%q) = %v, want admin in org-1 only", project, r.RolesFor(project))
	}
	if r.Claims()["custom"] != "kept" {
		t.Errorf("Claims()[custom] = %v, want every claim kept", r.Claims()["custom"])
	}
}

func TestIntrospectInactive(t *testing.T) {
	t.Parallel()
	as, c := newClient(t, introspect.WithoutCache())
	wrongAud := as.Mint(fakeas.Token{Subject: "u", Audience: []string{"other-project"}})
	revoked := as.Mint(fakeas.Token{Subject: "u", Audience: []string{project}})
	as.Revoke(revoked)
	for name, tok := range map[string]string{"unknown": "nope", "wrong audience": wrongAud, "revoked": revoked, "empty": ""} {
		if r, err := c.Introspect(context.Background(), tok); !errors.Is(err, introspect.ErrInactive) {
			t.Errorf("Introspect(%s) = %v, %v; want ErrInactive", name, r, err)
		}
	}
}

func TestIntrospectSendsRFC7662Request(t *testing.T) {
	t.Parallel()
	var got *http.Request
	var form url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		got, form = r, r.PostForm
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":true,"aud":"a"}`))
	}))
	t.Cleanup(srv.Close)
	c, _ := introspect.New(srv.URL, clientauth.ClientSecretBasic{ClientID: "api", Secret: "s"}, introspect.WithoutCache())
	r, err := c.Introspect(context.Background(), "tok-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Method != http.MethodPost || got.Header.Get("Accept") != "application/json" ||
		!strings.HasPrefix(got.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		t.Errorf("request = %s Accept=%q Content-Type=%q", got.Method, got.Header.Get("Accept"), got.Header.Get("Content-Type"))
	}
	if form.Get("token") != "tok-1" || form.Get("token_type_hint") != "access_token" {
		t.Errorf("form = %v, want token and token_type_hint=access_token", form)
	}
	if id, secret, ok := got.BasicAuth(); !ok || id != "api" || secret != "s" {
		t.Errorf("basic auth = %q, %q, %v", id, secret, ok)
	}
	if aud := r.Audience(); len(aud) != 1 || aud[0] != "a" {
		t.Errorf("aud = %v, want [a] from a string aud", aud)
	}
}

func TestIntrospectErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		handler        http.HandlerFunc
		wantUnavail    bool
		wantClientAuth bool
		wantRetry      time.Duration
	}{
		{"500", status(500, ""), true, false, 0},
		{"502", status(502, ""), true, false, 0},
		{"503 with Retry-After", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(503)
		}, true, false, 7 * time.Second},
		{"429 with Retry-After", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(429)
		}, true, false, 3 * time.Second},
		{"401 invalid_client", status(401, `{"error":"invalid_client","error_description":"bad key"}`), false, true, 0},
		{"400 unauthorized_client", status(400, `{"error":"unauthorized_client"}`), false, true, 0},
		{"200 invalid JSON", jsonBody(`{"active":tru`), true, false, 0},
		{"200 active as string", jsonBody(`{"active":"true"}`), true, false, 0},
		// Out of range, oidc.Time's float conversion would make these a
		// date past every exp check on amd64: refused instead.
		{"200 exp 1e300", jsonBody(`{"active":true,"exp":1e300}`), true, false, 0},
		{"200 exp past int64", jsonBody(`{"active":true,"exp":12345678901234567890}`), true, false, 0},
		{"200 exp past the year 9999", jsonBody(`{"active":true,"exp":253402300800}`), true, false, 0},
		{"200 not JSON content type", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(`{"active":true}`))
		}, true, false, 0},
		{"200 body over 1 MiB", jsonBody(`{"active":true,"x":"` + strings.Repeat("a", introspect.MaxResponseSize) + `"}`), true, false, 0},
		{"connection reset", func(w http.ResponseWriter, r *http.Request) {
			conn, _, _ := w.(http.Hijacker).Hijack()
			_ = conn.(*net.TCPConn).SetLinger(0)
			_ = conn.Close()
		}, true, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.handler)
			t.Cleanup(srv.Close)
			c, _ := introspect.New(srv.URL, clientauth.ClientSecretBasic{ClientID: "a", Secret: "b"})
			_, err := c.Introspect(context.Background(), "tok")
			if err == nil {
				t.Fatal("Introspect() err = nil")
			}
			if got := errors.Is(err, introspect.ErrUnavailable); got != tt.wantUnavail {
				t.Errorf("Introspect() err = %v; Is(ErrUnavailable) = %v, want %v", err, got, tt.wantUnavail)
			}
			if got := errors.Is(err, introspect.ErrClientAuth); got != tt.wantClientAuth {
				t.Errorf("Introspect() err = %v; Is(ErrClientAuth) = %v, want %v", err, got, tt.wantClientAuth)
			}
			var e *introspect.Error
			if errors.As(err, &e) && e.RetryAfter != tt.wantRetry {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tt.wantRetry)
			}
			if strings.Contains(err.Error(), "tok") && !strings.Contains(err.Error(), "token") {
				t.Errorf("error %q contains the token", err)
			}
		})
	}
}

func TestErrorsNeverCarryTheToken(t *testing.T) {
	t.Parallel()
	const tok = "s3cr3t-t0k3n"
	srv := httptest.NewServer(status(400, `{"error":"bad `+tok+`","error_description":"token `+tok+` is odd"}`))
	t.Cleanup(srv.Close)
	c, _ := introspect.New(srv.URL, clientauth.ClientSecretBasic{ClientID: "a", Secret: "b"})
	_, err := c.Introspect(context.Background(), tok)
	var e *introspect.Error
	if !errors.As(err, &e) || strings.Contains(err.Error(), tok) || strings.Contains(e.Code+e.Description, tok) {
		t.Errorf("err = %v, want the server's text without the token", err)
	}
}

func TestIntrospectUnreachable(t *testing.T) {
	t.Parallel()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close() // nothing listens here now
	c, _ := introspect.New("http://"+addr+"/introspect", clientauth.ClientSecretBasic{ClientID: "a", Secret: "b"})
	if _, err := c.Introspect(context.Background(), "tok"); !errors.Is(err, introspect.ErrUnavailable) {
		t.Errorf("Introspect() on a closed port err = %v, want ErrUnavailable", err)
	}
}

func TestIntrospectTimeout(t *testing.T) {
	t.Parallel()
	as, c := newClient(t, introspect.WithTimeout(100*time.Millisecond))
	as.SetDelay(2 * time.Second)
	start := time.Now()
	_, err := c.Introspect(context.Background(), as.Mint(fakeas.Token{Audience: []string{project}}))
	if !errors.Is(err, introspect.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Introspect() on a slow server err = %v, want ErrUnavailable wrapping DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Introspect() took %v with a 100ms timeout", d)
	}
}

func TestCacheOneCallPerToken(t *testing.T) {
	t.Parallel()
	as, c := newClient(t)
	tok := as.Mint(fakeas.Token{Subject: "u", Audience: []string{project}})
	for i := range 1000 {
		if _, err := c.Introspect(context.Background(), tok); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if n := as.Calls(); n != 1 {
		t.Errorf("1,000 sequential requests with one token made %d introspections, want 1", n)
	}
}

func TestCacheCoalescesConcurrentMisses(t *testing.T) {
	t.Parallel()
	as, c := newClient(t)
	as.SetDelay(50 * time.Millisecond) // keep the flight open while all 64 arrive
	tok := as.Mint(fakeas.Token{Subject: "u", Audience: []string{project}})
	var wg sync.WaitGroup
	var failed atomic.Int32
	start := make(chan struct{})
	for range 64 {
		wg.Go(func() {
			<-start
			if _, err := c.Introspect(context.Background(), tok); err != nil {
				failed.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of 64 concurrent requests failed", failed.Load())
	}
	if n := as.Calls(); n != 1 {
		t.Errorf("64 concurrent first requests made %d introspections, want 1", n)
	}
}

func TestCacheEntryEndsAtExp(t *testing.T) {
	t.Parallel()
	clk := newClock()
	as, c := newClient(t, introspect.WithClock(clk.Now), introspect.WithMaxTTL(time.Hour))
	tok := as.Mint(fakeas.Token{Subject: "u", Audience: []string{project}, Expiry: clk.Now().Add(90 * time.Second)})
	if _, err := c.Introspect(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	clk.Advance(89 * time.Second)
	if _, err := c.Introspect(context.Background(), tok); err != nil || as.Calls() != 1 {
		t.Fatalf("before exp: err = %v, calls = %d; want a cache hit", err, as.Calls())
	}
	clk.Advance(time.Second) // at exp: the entry must be gone
	_, _ = c.Introspect(context.Background(), tok)
	if n := as.Calls(); n != 2 {
		t.Errorf("calls = %d, want 2: the cached result must not outlive exp", n)
	}
}

func TestCacheEntryEndsAtMaxTTL(t *testing.T) {
	t.Parallel()
	clk := newClock()
	as, c := newClient(t, introspect.WithClock(clk.Now), introspect.WithMaxTTL(time.Minute))
	tok := as.Mint(fakeas.Token{Subject: "u", Audience: []string{project}})
	_, _ = c.Introspect(context.Background(), tok)
	clk.Advance(59 * time.Second)
	_, _ = c.Introspect(context.Background(), tok)
	if n := as.Calls(); n != 1 {
		t.Fatalf("calls within max TTL = %d, want 1", n)
	}
	as.Revoke(tok)
	clk.Advance(time.Second)
	if _, err := c.Introspect(context.Background(), tok); !errors.Is(err, introspect.ErrInactive) {
		t.Errorf("after max TTL a revoked token gave err = %v, want ErrInactive", err)
	}
}

func TestCacheNegativeTTL(t *testing.T) {
	t.Parallel()
	clk := newClock()
	as, c := newClient(t, introspect.WithClock(clk.Now), introspect.WithNegativeTTL(30*time.Second))
	for range 10 {
		if _, err := c.Introspect(context.Background(), "unknown"); !errors.Is(err, introspect.ErrInactive) {
			t.Fatalf("err = %v, want ErrInactive", err)
		}
	}
	if n := as.Calls(); n != 1 {
		t.Errorf("10 requests with an inactive token within the negative TTL made %d calls, want 1", n)
	}
	clk.Advance(30 * time.Second)
	_, _ = c.Introspect(context.Background(), "unknown")
	if n := as.Calls(); n != 2 {
		t.Errorf("after the negative TTL calls = %d, want 2 (re-asked)", n)
	}
}

func TestCacheNeverStoresErrors(t *testing.T) {
	t.Parallel()
	as, c := newClient(t, introspect.WithRetries(0, 0))
	tok := as.Mint(fakeas.Token{Subject: "u", Audience: []string{project}})
	as.SetFault(func(w http.ResponseWriter) bool { w.WriteHeader(http.StatusServiceUnavailable); return true })
	for range 3 {
		if _, err := c.Introspect(context.Background(), tok); !errors.Is(err, introspect.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	}
	as.SetFault(nil)
	if _, err := c.Introspect(context.Background(), tok); err != nil {
		t.Errorf("after the server recovered err = %v, want success", err)
	}
	if n := as.Calls(); n != 4 {
		t.Errorf("calls = %d, want 4: every failure re-asked, the error not cached", n)
	}
}

func TestWaiterHonoursItsOwnContext(t *testing.T) {
	t.Parallel()
	as, c := newClient(t)
	release := make(chan struct{})
	as.SetFault(func(http.ResponseWriter) bool { <-release; return false }) // the server answers only when released
	tok := as.Mint(fakeas.Token{Subject: "u", Audience: []string{project}})

	patient := make(chan error, 1)
	go func() { _, err := c.Introspect(context.Background(), tok); patient <- err }()
	for as.Calls() == 0 { // the patient caller has started the flight
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := c.Introspect(ctx, tok); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("impatient waiter err = %v, want DeadlineExceeded while the server has not answered", err)
	}
	select {
	case err := <-patient:
		t.Fatalf("the patient caller returned (%v) before the server answered", err)
	default:
	}
	close(release)
	if err := <-patient; err != nil {
		t.Errorf("patient caller err = %v; the flight must outlive a waiter that gave up", err)
	}
}

func TestInvalidate(t *testing.T) {
	t.Parallel()
	as, c := newClient(t)
	tok := as.Mint(fakeas.Token{Subject: "u", Audience: []string{project}})
	_, _ = c.Introspect(context.Background(), tok)
	as.Revoke(tok)
	c.Invalidate(tok)
	if _, err := c.Introspect(context.Background(), tok); !errors.Is(err, introspect.ErrInactive) {
		t.Errorf("after Invalidate err = %v, want ErrInactive at once", err)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	auth := clientauth.ClientSecretBasic{ClientID: "a", Secret: "b"}
	tests := []struct {
		name     string
		endpoint string
		auth     introspect.ClientAuthenticator
		opts     []introspect.Option
	}{
		{"relative endpoint", "/oauth/v2/introspect", auth, nil},
		{"ftp endpoint", "ftp://x/y", auth, nil},
		{"nil auth", "https://x/y", nil, nil},
		{"zero timeout", "https://x/y", auth, []introspect.Option{introspect.WithTimeout(0)}},
		{"negative cache size", "https://x/y", auth, []introspect.Option{introspect.WithCacheSize(-1)}},
		{"negative TTL over max", "https://x/y", auth, []introspect.Option{introspect.WithMaxTTL(time.Second), introspect.WithNegativeTTL(time.Minute)}},
		{"negative negative cache size", "https://x/y", auth, []introspect.Option{introspect.WithNegativeCacheSize(-1)}},
		{"negative stale window", "https://x/y", auth, []introspect.Option{introspect.WithStaleIfError(-time.Second)}},
		{"zero in flight", "https://x/y", auth, []introspect.Option{introspect.WithMaxInFlight(0, time.Second)}},
		{"retries without backoff", "https://x/y", auth, []introspect.Option{introspect.WithRetries(2, 0)}},
		{"breaker without cooldown", "https://x/y", auth, []introspect.Option{introspect.WithCircuitBreaker(3, 0)}},
		{"zero cache size (WithoutCache turns it off)", "https://x/y", auth, []introspect.Option{introspect.WithCacheSize(0)}},
		{"zero cache bytes", "https://x/y", auth, []introspect.Option{introspect.WithCacheBytes(0)}},
		{"retries past the maximum", "https://x/y", auth, []introspect.Option{introspect.WithRetries(1000, time.Millisecond)}},
		{"negative retries", "https://x/y", auth, []introspect.Option{introspect.WithRetries(-1, time.Millisecond)}},
		{"WithoutCache with a shared cache", "https://x/y", auth, []introspect.Option{introspect.WithoutCache(), introspect.WithSharedCache(&memShared{})}},
		{"WithoutCache with stale-if-error", "https://x/y", auth, []introspect.Option{introspect.WithoutCache(), introspect.WithStaleIfError(time.Minute)}},
		{"WithoutCache with a negative TTL", "https://x/y", auth, []introspect.Option{introspect.WithNegativeTTL(time.Second), introspect.WithoutCache()}},
		{"WithoutCache with a cache size", "https://x/y", auth, []introspect.Option{introspect.WithoutCache(), introspect.WithCacheSize(10)}},
		{"max TTL past the bound (overflows)", "https://x/y", auth, []introspect.Option{introspect.WithMaxTTL(math.MaxInt64)}},
		{"stale window past the bound", "https://x/y", auth, []introspect.Option{introspect.WithStaleIfError(math.MaxInt64)}},
		{"cooldown past the bound", "https://x/y", auth, []introspect.Option{introspect.WithCircuitBreaker(5, math.MaxInt64)}},
		{"timeout past the bound", "https://x/y", auth, []introspect.Option{introspect.WithTimeout(math.MaxInt64)}},
	}
	for _, tt := range tests {
		if _, err := introspect.New(tt.endpoint, tt.auth, tt.opts...); err == nil {
			t.Errorf("New(%s) err = nil, want an error", tt.name)
		}
	}
	// The errors say what to do.
	_, err := introspect.New("https://x/y", auth, introspect.WithoutCache(), introspect.WithSharedCache(&memShared{}))
	if err == nil || !strings.Contains(err.Error(), "WithSharedCache") {
		t.Errorf("WithoutCache with a shared cache: err = %v, want it to name WithSharedCache", err)
	}
	_, err = introspect.New("https://x/y", auth, introspect.WithCacheSize(0))
	if err == nil || !strings.Contains(err.Error(), "WithoutCache") {
		t.Errorf("WithCacheSize(0): err = %v, want it to point to WithoutCache", err)
	}
	// Nil options keep their defaults.
	if _, err := introspect.New("https://x/y", auth, introspect.WithHTTPClient(nil), introspect.WithClock(nil), introspect.WithMeterProvider(nil), introspect.WithTracerProvider(nil)); err != nil {
		t.Errorf("New with nil HTTP client, clock and providers: err = %v, want the defaults", err)
	}
}

// The cache is bounded in bytes as well as entries: a server that sends
// large answers cannot make 10,000 entries take gigabytes.
func TestCacheBoundedInBytes(t *testing.T) {
	t.Parallel()
	// A big body, and one that decodes to several times its size: many
	// short role grants and scopes.
	var roles, scopes strings.Builder
	for i := range 20_000 {
		if i > 0 {
			roles.WriteByte(',')
			scopes.WriteByte(' ')
		}
		fmt.Fprintf(&roles, `"r%d":{"o":""}`, i)
		fmt.Fprintf(&scopes, "s%d", i)
	}
	for _, tc := range []struct{ name, claims string }{
		{"metadata", `"metadata":"` + strings.Repeat("x", 256<<10) + `"`},
		{"many roles and scopes", `"urn:zitadel:iam:org:project:roles":{` + roles.String() + `},"scope":"` + scopes.String() + `"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_ = r.ParseForm()
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"active":true,"sub":"` + r.PostForm.Get("token") + `","aud":["p"],` + tc.claims + `}`))
			}))
			t.Cleanup(srv.Close)
			const limit = 8 << 20
			c, err := introspect.New(srv.URL, clientauth.ClientSecretBasic{ClientID: "a", Secret: "b"}, introspect.WithCacheBytes(limit))
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			const tokens = 100
			for i := range tokens {
				if _, err := c.Introspect(context.Background(), "token-"+strconv.Itoa(i)); err != nil {
					t.Fatal(err)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 2*limit {
				t.Errorf("heap grew by %d MiB caching %d large answers under a %d MiB bound", grown>>20, tokens, limit>>20)
			}
			if _, ok := c.Cached(context.Background(), "token-"+strconv.Itoa(tokens-1)); !ok {
				t.Error("the latest answer was not cached")
			}
			if _, ok := c.Cached(context.Background(), "token-0"); ok {
				t.Error("the oldest answer is still cached past the byte bound")
			}
		})
	}
}

func status(code int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}
}

func jsonBody(body string) http.HandlerFunc { return status(http.StatusOK, body) }
