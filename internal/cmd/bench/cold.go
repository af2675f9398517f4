package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
)

// The cold path: every request carries a token the API has not cached, so
// every request costs one introspection. Runs over plain HTTP compare
// tokenguard with per-request introspection; runs over TLS count the TLS
// handshakes at the authorization server, which a transport that closes
// and re-dials connections pays for on every burst.

// tlsFront is a TLS endpoint in front of the development server that counts
// TLS handshakes (ClientHellos): the authorization server as a deployment
// reaches it. It forwards to the development server over loopback HTTP on
// connections of its own, which it keeps.
type tlsFront struct {
	srv        *httptest.Server
	handshakes atomic.Int64
}

func newTLSFront(target string, http2 bool) (*tlsFront, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 1024
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(u) }, Transport: tr}
	f := &tlsFront{srv: httptest.NewUnstartedServer(proxy)}
	f.srv.EnableHTTP2 = http2
	f.srv.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		f.handshakes.Add(1)
		return nil, nil // go on with the server's own config
	}}
	f.srv.StartTLS()
	return f, nil
}

// trust returns tr set up to trust the front's certificate, as a deployment
// with a private CA sets up its transport; nothing else of tr changes.
func (f *tlsFront) trust(tr *http.Transport) *http.Transport {
	tr.TLSClientConfig = f.srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	return tr
}

// coldRoute is a route of the cold-token runs. Each run gets a new guard,
// as if the API had just started, so that every token of the pool is a miss
// again.
type coldRoute struct {
	name, path string
	front      *tlsFront                    // nil over plain HTTP
	transport  func() *http.Transport       // the guard's; nil for the per-request introspection baseline
	endpoint   string                       // the introspection endpoint; "" to discover it
	current    atomic.Pointer[guardHandler] // the guard of the run
}

type guardHandler struct {
	h  http.Handler
	tr *http.Transport
}

type coldSetup struct {
	http, sdk, tls2, tls1, std1 *coldRoute
	fronts                      []*tlsFront
	pool, warmups               []string // minted tokens: the runs' and the connection warm-ups'
	next                        atomic.Int64
	newGuard                    func(r *coldRoute) (*guardHandler, error)
}

func (c *coldSetup) close() {
	for _, r := range []*coldRoute{c.http, c.tls2, c.tls1, c.std1} {
		if r != nil && r.current.Load() != nil {
			r.current.Load().tr.CloseIdleConnections()
		}
	}
	for _, f := range c.fronts {
		f.srv.Close()
	}
}

// setupCold adds the cold-token routes to mux: tokenguard with default
// settings over plain HTTP, and over TLS with the default transport (the
// server offering HTTP/2, or HTTP/1.1 only), and for contrast on
// http.DefaultTransport (HTTP/1.1 only). It mints the token pool.
func (b *bench) setupCold(ctx context.Context, keyFile string, mux *http.ServeMux, next http.Handler) error {
	c := &b.cold
	c.newGuard = func(r *coldRoute) (*guardHandler, error) {
		tr := r.transport()
		g, err := tokenguard.New(ctx, tokenguard.Config{Issuer: b.srv.Issuer(), KeyFile: keyFile, ProjectID: b.project.ID,
			IntrospectionEndpoint: r.endpoint, HTTPClient: &http.Client{Transport: tr}}, middleware.WithLogger(discardLogger()))
		if err != nil {
			return nil, err
		}
		return &guardHandler{h: g.Wrap(next), tr: tr}, nil
	}
	c.http = &coldRoute{name: fmt.Sprintf("tokenguard, cold, HTTP, %d connections", b.cfg.coldConc), path: "/cold/ping", transport: introspect.NewTransport}
	c.sdk = &coldRoute{name: fmt.Sprintf("SDK style, cold, HTTP, %d connections", b.cfg.coldConc), path: "/sdk/ping"}
	overTLS := func(name, path string, http2 bool, tr func() *http.Transport) (*coldRoute, error) {
		f, err := newTLSFront(b.srv.Issuer(), http2)
		if err != nil {
			return nil, err
		}
		c.fronts = append(c.fronts, f)
		return &coldRoute{name: fmt.Sprintf("%s, %d connections", name, b.cfg.coldConc), path: path, front: f,
			endpoint: f.srv.URL + devserver.IntrospectPath, transport: func() *http.Transport { return f.trust(tr()) }}, nil
	}
	stdlib := func() *http.Transport { return http.DefaultTransport.(*http.Transport).Clone() }
	var err error
	if c.tls2, err = overTLS("tokenguard, cold, TLS (HTTP/2 offered)", "/tls2/ping", true, introspect.NewTransport); err != nil {
		return err
	}
	if c.tls1, err = overTLS("tokenguard, cold, TLS (HTTP/1.1 only)", "/tls1/ping", false, introspect.NewTransport); err != nil {
		return err
	}
	if c.std1, err = overTLS("same on http.DefaultTransport, TLS (HTTP/1.1 only)", "/std1/ping", false, stdlib); err != nil {
		return err
	}
	for _, r := range []*coldRoute{c.http, c.tls2, c.tls1, c.std1} {
		gh, err := c.newGuard(r) // checks the setup now; each run replaces it
		if err != nil {
			return err
		}
		r.current.Store(gh)
		mux.Handle("GET "+r.path, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { r.current.Load().h.ServeHTTP(w, req) }))
	}
	if c.pool, err = b.mintMany(b.cfg.coldTokens); err != nil {
		return err
	}
	c.warmups, err = b.mintMany(b.cfg.coldConc)
	return err
}

// mintMany mints n tokens on both cores.
func (b *bench) mintMany(n int) ([]string, error) {
	out := make([]string, n)
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		err     error
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				t, e := b.mint()
				if e != nil {
					errOnce.Do(func() { err = e })
					return
				}
				out[i] = t
			}
		})
	}
	wg.Wait()
	return out, err
}

// coldInterleave runs each route once per round, in every order in turn,
// with conc connections. Before each run the route gets a new guard, so
// that every token is a miss, and conc concurrent requests with warm-up
// tokens open the connections a long-running API would have open; then the
// run takes tokens from the pool, each once, and ends early if they run out.
func (b *bench) coldInterleave(ctx context.Context, rounds, conc int, rs []*coldRoute) []loadResult {
	c := &b.cold
	out := make([]loadResult, len(rs))
	orders := permutations(len(rs))
	pick := func(*rand.Rand) string {
		if i := c.next.Add(1) - 1; i < int64(len(c.pool)) {
			return c.pool[i]
		}
		return ""
	}
	for round := range rounds {
		for _, i := range orders[round%len(orders)] {
			r := rs[i]
			if r.transport != nil {
				gh, err := c.newGuard(r)
				if err != nil {
					out[i].errs++ // counted as unanswered; the setup made one before
					continue
				}
				r.current.Swap(gh).tr.CloseIdleConnections()
			}
			b.get(ctx, r.path, c.warmups[0]) // one connection first, as a running API has
			var wg sync.WaitGroup
			for _, t := range c.warmups[:conc] {
				wg.Go(func() { b.get(ctx, r.path, t) })
			}
			wg.Wait()
			c.next.Store(0)
			runtime.GC()
			var hs0 int64
			if r.front != nil {
				hs0 = r.front.handshakes.Load()
			}
			res := b.load(ctx, r.path, conc, pick)
			if r.front != nil {
				res.handshakes = r.front.handshakes.Load() - hs0
			}
			res.ranOut = c.next.Load() >= int64(len(c.pool))
			out[i].perRound = append(out[i].perRound, res.rps())
			out[i].reqs += res.reqs
			out[i].errs += res.errs
			out[i].elapsed += res.elapsed
			out[i].cpu += res.cpu
			out[i].calls += res.calls
			out[i].handshakes += res.handshakes
			out[i].ranOut = out[i].ranOut || res.ranOut
			out[i].lat = append(out[i].lat, res.lat...)
		}
	}
	return out
}

// coldResults are the cold-token runs: over HTTP, tokenguard and the
// per-request introspection baseline; over TLS, the default transport with
// HTTP/2 offered and with HTTP/1.1 only, and http.DefaultTransport.
type coldResults struct {
	http, sdk, tls2, tls1, std1 loadResult
}

func (b *bench) runCold(ctx context.Context, r *strings.Builder, rounds int) coldResults {
	c := &b.cold
	h := b.coldInterleave(ctx, rounds, b.cfg.coldConc, []*coldRoute{c.http, c.sdk})
	t := b.coldInterleave(ctx, rounds, b.cfg.coldConc, []*coldRoute{c.tls2, c.tls1, c.std1})
	res := coldResults{http: h[0], sdk: h[1], tls2: t[0], tls1: t[1], std1: t[2]}

	fmt.Fprintf(r, "\n## Cold tokens: every request a token the API has not cached\n\n")
	fmt.Fprintf(r, "| run | req/s | p50 | p99 | process CPU per req | introspections per 1k req | TLS handshakes per 1k req | non-200 |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	ranOut := false
	for _, row := range []struct {
		name string
		res  loadResult
		tls  bool
	}{{c.http.name, res.http, false}, {c.sdk.name, res.sdk, false}, {c.tls2.name, res.tls2, true}, {c.tls1.name, res.tls1, true}, {c.std1.name, res.std1, true}} {
		p50, p99 := percentile(row.res.lat, 0.50), percentile(row.res.lat, 0.99)
		tlsCol := "-"
		if row.tls {
			tlsCol = fmt.Sprintf("%.2f", perThousand(row.res.handshakes, row.res.reqs))
		}
		fmt.Fprintf(r, "| %s | %.0f | %s | %s | %s | %.1f | %s | %d |\n", row.name, row.res.rps(), fmtDur(p50), fmtDur(p99),
			fmtDur(row.res.cpuPerReq()), perThousand(row.res.calls, row.res.reqs), tlsCol, row.res.errs)
		ranOut = ranOut || row.res.ranOut
	}
	fmt.Fprintf(r, "\nEach run starts after %d concurrent requests that open the connections a running API has open; tokens are used once per run, %d at most.\n",
		b.cfg.coldConc, len(c.pool))
	if ranOut {
		fmt.Fprintf(r, "Some runs used up the %d tokens before the end of their time: raise -cold-tokens.\n", len(c.pool))
	}
	return res
}

func perThousand(n int64, reqs int) float64 {
	if reqs == 0 {
		return 0
	}
	return float64(n) * 1000 / float64(reqs)
}
