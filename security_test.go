package tokenguard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
)

func newGuard(t *testing.T, as *fakeas.Server, projectID string, opts ...middleware.Option) *tokenguard.Guard {
	t.Helper()
	keyJSON, _ := as.NewApp(projectID)
	g, err := tokenguard.New(context.Background(), tokenguard.Config{Issuer: as.Issuer, KeyFile: writeKey(t, keyJSON), ProjectID: projectID}, append([]middleware.Option{discardLogs()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGuardsNeverShareDecisions(t *testing.T) {
	t.Parallel()
	as, other := fakeas.Start(), fakeas.Start()
	t.Cleanup(as.Close)
	t.Cleanup(other.Close)
	a := newGuard(t, as, "p1").Wrap(ok)
	b := newGuard(t, as, "p2").Wrap(ok)    // same issuer, another audience
	c := newGuard(t, other, "p1").Wrap(ok) // another issuer, same audience
	tok := as.Mint(fakeas.Token{Subject: "u", Audience: []string{"p1"}})
	for range 3 { // first request and cache hits alike
		if got := serve(a, tok).Code; got != 200 {
			t.Errorf("guard for p1: %d, want 200", got)
		}
		if got := serve(b, tok).Code; got != 401 {
			t.Errorf("guard for p2 after p1 cached the token: %d, want 401", got)
		}
		if got := serve(c, tok).Code; got != 401 {
			t.Errorf("guard of another issuer: %d, want 401", got)
		}
	}
}

func TestOddClaimsNeverGrantAccess(t *testing.T) {
	t.Parallel()
	as := fakeas.Start()
	t.Cleanup(as.Close)
	g := newGuard(t, as, project)
	admin := g.Require(middleware.Role("admin"))(ok)
	many := make([]string, 100_000)
	for i := range many {
		many[i] = fmt.Sprint("aud-", i)
	}
	tests := []struct {
		name  string
		tok   fakeas.Token
		h     http.Handler
		wants []int
	}{
		{"100k audiences, none ours", fakeas.Token{Audience: append(many, project+"x")}, g.Wrap(ok), []int{401}},
		{"roles of the wrong shape", fakeas.Token{Audience: []string{project}, Extra: map[string]any{"urn:zitadel:iam:org:project:roles": []any{"admin"}}}, admin, []int{403}},
		{"role grants of the wrong shape", fakeas.Token{Audience: []string{project}, Extra: map[string]any{"urn:zitadel:iam:org:project:roles": map[string]any{"admin": "yes"}}}, admin, []int{403}},
		{"exp as a string", fakeas.Token{Audience: []string{project}, Extra: map[string]any{"exp": "4102444800"}}, g.Wrap(ok), []int{503}},
		{"aud as a number", fakeas.Token{Audience: []string{project}, Extra: map[string]any{"aud": 42}}, g.Wrap(ok), []int{401, 503}},
		{"active as a string", fakeas.Token{Audience: []string{project}, Extra: map[string]any{"active": "true"}}, g.Wrap(ok), []int{503}},
		{"nbf in the future", fakeas.Token{Audience: []string{project}, Extra: map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}}, g.Wrap(ok), []int{401}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.tok.Subject = "u"
			tok := as.Mint(tt.tok)
			for range 2 {
				if got := serve(tt.h, tok).Code; !containsInt(tt.wants, got) {
					t.Errorf("%d, want one of %v", got, tt.wants)
				}
			}
		})
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// capture is a slog handler that keeps every record, attributes included.
type capture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *capture) Enabled(context.Context, slog.Level) bool { return true }
func (c *capture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&c.buf, " %s=%v", a.Key, a.Value); return true })
	c.buf.WriteByte('\n')
	return nil
}
func (c *capture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *capture) WithGroup(string) slog.Handler      { return c }
func (c *capture) String() string                     { c.mu.Lock(); defer c.mu.Unlock(); return c.buf.String() }

func TestSecretsNeverLoggedOrEchoed(t *testing.T) {
	t.Parallel()
	as := fakeas.Start()
	t.Cleanup(as.Close)
	logs := &capture{}
	keyJSON, _ := as.NewApp(project)
	var key struct{ Key string }
	_ = json.Unmarshal(keyJSON, &key)
	g, err := tokenguard.New(context.Background(), tokenguard.Config{Issuer: as.Issuer, KeyFile: writeKey(t, keyJSON), ProjectID: project,
		IntrospectOptions: []introspect.Option{introspect.WithRetries(0, 0)}}, middleware.WithLogger(slog.New(logs)))
	if err != nil {
		t.Fatal(err)
	}
	h := g.Wrap(ok)
	tok := as.Mint(fakeas.Token{Subject: "u", Audience: []string{project}})
	var bodies strings.Builder
	for _, fault := range []func(http.ResponseWriter) bool{
		status(503),
		func(w http.ResponseWriter) bool { // client auth rejected, with hostile text
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"bad\r\nX-Injected: 1 ` + tok + `"}`))
			return true
		},
	} {
		as.SetFault(fault)
		rec := serve(h, tok)
		bodies.WriteString(rec.Body.String())
		for k, v := range rec.Header() {
			bodies.WriteString(k + ": " + strings.Join(v, ",") + "\n")
		}
	}
	keyLine := strings.Split(key.Key, "\n")[1] // a line of the base64 key body
	for what, text := range map[string]string{"logs": logs.String(), "responses": bodies.String()} {
		if strings.Contains(text, tok) {
			t.Errorf("%s contain the token:\n%s", what, text)
		}
		if strings.Contains(text, keyLine) {
			t.Errorf("%s contain key material", what)
		}
	}
	if strings.Contains(logs.String(), "\r\nX-Injected") {
		t.Errorf("logs carry raw control characters from the server:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "check the key file") {
		t.Errorf("logs lack the configuration error:\n%s", logs)
	}
}

// TestSoak sends 20,000 requests from 64 goroutines with 1,000 tokens of
// every kind while the authorization server flaps, and checks every answer.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	as := fakeas.Start()
	defer as.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	counted := &answerCounter{base: tr, received: map[string]int{}}
	keyJSON, _ := as.NewApp(project)
	g, err := tokenguard.New(context.Background(), tokenguard.Config{Issuer: as.Issuer, KeyFile: writeKey(t, keyJSON), ProjectID: project,
		HTTPClient: &http.Client{Transport: counted},
		IntrospectOptions: []introspect.Option{introspect.WithTimeout(time.Second), introspect.WithRetries(1, 5*time.Millisecond),
			introspect.WithCircuitBreaker(5, 50*time.Millisecond),
			// However long a loaded machine takes, no entry expires during
			// the soak: each answer the client receives is its only one.
			introspect.WithMaxTTL(time.Hour), introspect.WithNegativeTTL(time.Hour)}}, discardLogs())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api", g.Wrap(ok))
	mux.Handle("/api/admin", g.Require(middleware.Role("admin"))(ok))

	type kind int
	const (
		valid kind = iota
		validAdmin
		wrongAud
		expired
		revoked
		junk
	)
	type tokenCase struct {
		tok  string
		kind kind
	}
	var cases []tokenCase
	for i := range 1000 {
		k := kind(i % 6)
		tk := fakeas.Token{Subject: fmt.Sprint("u", i), Audience: []string{project}}
		switch k {
		case validAdmin:
			tk.Roles = map[string]map[string]string{"admin": {"o": "d"}}
		case wrongAud:
			tk.Audience = []string{"other"}
		case expired:
			tk.Expiry = time.Now().Add(-time.Minute)
		case junk:
			cases = append(cases, tokenCase{[]string{fmt.Sprint("junk-", i), fmt.Sprint("bad token ", i), "é" + fmt.Sprint(i)}[i%3], k})
			continue
		}
		tok := as.Mint(tk)
		if k == revoked {
			as.Revoke(tok)
		}
		cases = append(cases, tokenCase{tok, k})
	}

	stop := make(chan struct{})
	flapped := make(chan struct{})
	go func() { // the server flaps between healthy and failing
		defer close(flapped)
		for i := 0; ; i++ {
			if i%2 == 0 {
				as.SetFault(status(503))
			} else {
				as.SetFault(nil)
			}
			select {
			case <-stop:
				as.SetFault(nil)
				return
			case <-time.After(time.Duration(10+rand.IntN(30)) * time.Millisecond):
			}
		}
	}()
	var wrong, ok200, refused atomic.Int64
	var mu sync.Mutex
	var failures []string
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for next.Add(1) <= 20_000 {
				tc := cases[rng.IntN(len(cases))]
				path := []string{"/api", "/api/admin"}[rng.IntN(2)]
				req := httptest.NewRequest("GET", path, nil)
				req.Header.Set("Authorization", "Bearer "+tc.tok)
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, req)
				good := tc.kind == validAdmin || (tc.kind == valid && path == "/api")
				var allowed []int
				switch {
				case good:
					allowed = []int{200, 503}
				case tc.kind == valid: // valid, but no admin role
					allowed = []int{403, 503}
				case tc.kind == junk:
					allowed = []int{400, 401, 503}
				default:
					allowed = []int{401, 503}
				}
				if rec.Code == 200 {
					ok200.Add(1)
				} else {
					refused.Add(1)
				}
				if !containsInt(allowed, rec.Code) {
					wrong.Add(1)
					mu.Lock()
					if len(failures) < 10 {
						failures = append(failures, fmt.Sprintf("kind %d on %s: %d", tc.kind, path, rec.Code))
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-flapped
	if n := wrong.Load(); n > 0 {
		t.Errorf("%d wrong decisions, e.g. %v", n, failures)
	}
	if ok200.Load() == 0 || refused.Load() == 0 {
		t.Errorf("200s %d, refusals %d: the soak exercised too little", ok200.Load(), refused.Load())
	}
	// Cache rules: every answer the client receives is cached (active or
	// inactive), so it receives at most one per token; junk that is not a
	// token never reaches the server. The server's own count may be higher
	// only by answers that never arrived (on a loaded machine, the client
	// gives up at its deadline after the server counted the answer, so the
	// token is rightly asked about again), never by more.
	answerable := 0
	for _, tc := range cases {
		if tc.kind != junk || !strings.ContainsAny(tc.tok, " é") {
			answerable++
		}
	}
	received, lost := counted.counts()
	total := 0
	for tok, n := range received {
		total += n
		if n > 1 {
			t.Errorf("the client received %d answers for one token: answers were not cached", n)
		}
		if strings.ContainsAny(tok, " é") {
			t.Errorf("a malformed token %q reached the server", tok)
		}
	}
	if total > answerable {
		t.Errorf("the client received %d answers for %d answerable tokens: answers were not cached", total, answerable)
	}
	if n := as.Answered(); n > int64(total+lost) {
		t.Errorf("the server answered %d introspections, the client received %d and lost %d: the counts do not add up", n, total, lost)
	}
	t.Logf("%d requests: %d 200, %d refused; %d introspection requests, %d answered by the server, %d received by the client, %d lost (deadline or transit)",
		20_000, ok200.Load(), refused.Load(), as.Calls(), as.Answered(), total, lost)
}

// answerCounter is the soak's introspection transport. It counts, per
// token, the answers (200s) the client read to the end, which the client
// caches; and the requests whose answer it did not read to the end (given
// up at the client's deadline, or lost in transit), of which the server may
// have counted an answer. It is safe for concurrent use.
type answerCounter struct {
	base http.RoundTripper

	mu       sync.Mutex // guards received and lost
	received map[string]int
	lost     int
}

func (c *answerCounter) counts() (map[string]int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.received), c.lost
}

func (c *answerCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path != fakeas.IntrospectPath {
		return c.base.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	form, _ := url.ParseQuery(string(body))
	tok := form.Get("token")
	req = req.Clone(req.Context())
	req.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := c.base.RoundTrip(req)
	if err != nil {
		c.mu.Lock()
		c.lost++
		c.mu.Unlock()
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		resp.Body = &countedBody{ReadCloser: resp.Body, c: c, tok: tok}
	}
	return resp, nil
}

// countedBody counts its answer as received at EOF, or as lost when
// closed before.
type countedBody struct {
	io.ReadCloser
	c    *answerCounter
	tok  string
	done bool
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		b.c.mu.Lock()
		b.c.received[b.tok]++
		b.c.mu.Unlock()
	}
	return n, err
}

func (b *countedBody) Close() error {
	if !b.done {
		b.done = true
		b.c.mu.Lock()
		b.c.lost++
		b.c.mu.Unlock()
	}
	return b.ReadCloser.Close()
}
