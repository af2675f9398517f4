package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rs"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
)

type benchConfig struct {
	delay, duration time.Duration
	rounds, conc    int
	tokens, entries int
	coldTokens      int
	coldConc        int
	check           bool
	cpuprofile      string
	coldProfile     string // -cpuprofile-cold
	only            string // "" for everything, "cold" for the cold-token sections
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var c benchConfig
	fs.DurationVar(&c.delay, "delay", 2*time.Millisecond, "introspection delay of the authorization server")
	fs.DurationVar(&c.duration, "duration", 1500*time.Millisecond, "length of each load run")
	fs.IntVar(&c.rounds, "rounds", 12, "interleaved rounds (A B A B ...) per comparison")
	fs.IntVar(&c.conc, "concurrency", 8, "connections of the closed-loop load generator")
	fs.IntVar(&c.tokens, "tokens", 1000, "distinct tokens in the many-token runs")
	fs.IntVar(&c.entries, "entries", 100_000, "cached entries for the memory measurement")
	fs.IntVar(&c.coldTokens, "cold-tokens", 20_000, "distinct tokens a cold-token run can use (it ends early when they run out)")
	fs.IntVar(&c.coldConc, "cold-concurrency", 32, "connections of the load generator in the cold-token runs and the API CPU runs")
	fs.BoolVar(&c.check, "check", false, "exit with status 1 when a target is missed")
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile of the first tokenguard hot-token run to this file")
	fs.StringVar(&c.coldProfile, "cpuprofile-cold", "", "write a CPU profile of the first cold run with the authorization server in another process to this file")
	fs.StringVar(&c.only, "only", "", `run only one part: "cold" (the cold-token runs and the API CPU runs, with their targets)`)
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if c.only != "" && c.only != "cold" {
		return fail(exitUsage, "bench: -only %q: the only part that runs alone is \"cold\"", c.only)
	}
	if fs.NArg() > 0 || c.rounds < 1 || c.conc < 1 || c.tokens < 1 || c.entries < 1 || c.coldTokens < 1 || c.coldConc < 1 || c.duration <= 0 {
		return fail(exitUsage, "bench: bad arguments (rounds, concurrency, tokens, entries, cold tokens, cold concurrency and duration must be positive)")
	}
	b, err := newBench(ctx, c)
	if err != nil {
		return fail(exitConfig, "bench: %v", err)
	}
	defer b.close()
	report, missed := b.run(ctx)
	_, _ = io.WriteString(stdout, report)
	if c.check && missed > 0 {
		return &exitError{code: exitMissed, err: fmt.Errorf("bench: %d target(s) missed", missed)}
	}
	return nil
}

type bench struct {
	cfg     benchConfig
	srv     *devserver.Server
	api     *httptest.Server
	client  *http.Client
	project devserver.Project
	user    devserver.ServiceUser
	appKey  []byte
	guard   *tokenguard.Guard
	goCache *goCacheBaseline
	hot     string
	tokens  []string
	dir     string
	cold    coldSetup
	cpu     cpuSetup // the CPU runs, with the authorization server in a child process
}

func newBench(ctx context.Context, c benchConfig) (*bench, error) {
	srv, err := devserver.Start(devserver.WithIntrospectionDelay(c.delay))
	if err != nil {
		return nil, err
	}
	b := &bench{cfg: c, srv: srv, project: srv.CreateProject("bench")}
	app, err := srv.CreateAPIApp(b.project.ID)
	if err != nil {
		b.close()
		return nil, err
	}
	b.appKey = app.KeyJSON
	if b.user, err = srv.CreateServiceUser("bench-bot", devserver.Grant{ProjectID: b.project.ID, Roles: []string{"admin", "reader"}}); err != nil {
		b.close()
		return nil, err
	}
	if b.dir, err = os.MkdirTemp("", "tokenguard-bench-"); err != nil {
		b.close()
		return nil, err
	}
	keyFile := filepath.Join(b.dir, "api.json")
	if err := os.WriteFile(keyFile, app.KeyJSON, 0o600); err != nil {
		b.close()
		return nil, err
	}
	b.guard, err = tokenguard.New(ctx, tokenguard.Config{Issuer: srv.Issuer(), KeyFile: keyFile, ProjectID: b.project.ID},
		middleware.WithLogger(discardLogger()))
	if err != nil {
		b.close()
		return nil, err
	}
	key, _ := clientauth.ParseKey(app.KeyJSON)
	var pemKey struct{ Key string }
	_ = json.Unmarshal(app.KeyJSON, &pemKey)
	server, err := rs.NewResourceServerJWTProfile(ctx, srv.Issuer(), key.ClientID, key.KeyID, []byte(pemKey.Key))
	if err != nil {
		b.close()
		return nil, err
	}
	// Every route answers pong; the protected ones first read the caller's
	// identity from the request context, as a real handler does, and fail
	// with 500 (counted as non-200) when it is missing.
	pong := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "pong") })
	tgPong := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := middleware.ClaimsFromContext(r.Context()); !ok || c.Subject == "" {
			http.Error(w, "no claims", http.StatusInternalServerError)
			return
		}
		pong(w, r)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /ping", pong)
	mux.Handle("GET /api/ping", b.guard.Wrap(tgPong))
	mux.Handle("GET /sdk/ping", sdkBaseline(server, b.project.ID, authorizedPong(pong)))
	b.goCache = newGoCacheBaseline(server, b.project.ID)
	mux.Handle("GET /cached/ping", b.goCache.wrap(authorizedPong(pong)))
	if err := b.setupCold(ctx, keyFile, mux, tgPong); err != nil {
		b.close()
		return nil, err
	}
	if err := b.setupCPU(ctx, mux, tgPong); err != nil {
		b.close()
		return nil, err
	}
	b.api = httptest.NewServer(mux)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	b.client = &http.Client{Transport: tr}
	if b.hot, err = b.mint(); err != nil {
		b.close()
		return nil, err
	}
	for range c.tokens {
		t, err := b.mint()
		if err != nil {
			b.close()
			return nil, err
		}
		b.tokens = append(b.tokens, t)
	}
	return b, nil
}

func (b *bench) mint() (string, error) {
	return b.srv.MintToken(b.user.UserID, devserver.TokenOptions{ProjectIDs: []string{b.project.ID}})
}

func (b *bench) close() {
	if b.api != nil {
		b.api.Close()
	}
	b.cold.close()
	b.cpu.close()
	b.srv.Close()
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// loadResult is one closed-loop run, or several merged.
type loadResult struct {
	reqs, errs int
	elapsed    time.Duration
	lat        []time.Duration
	calls      int64         // introspections during the run
	cpu        time.Duration // process CPU time (load generator and servers)
	perRound   []float64     // req/s of each round's run, when merged
	handshakes int64         // TLS handshakes at the authorization server during the run
	ranOut     bool          // a cold-token run ended early: no tokens left
}

func (r loadResult) rps() float64 { return float64(r.reqs) / r.elapsed.Seconds() }

// cpuPerReq is the process's CPU time per request: the load generator's,
// the API's and the authorization server's together, so that differences
// between variants are what their routes cost.
func (r loadResult) cpuPerReq() time.Duration {
	if r.reqs == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.reqs)
}

// load runs conc workers that each send requests back to back for the
// configured duration, picking a token per request, until pick returns "".
func (b *bench) load(ctx context.Context, path string, conc int, pick func(*rand.Rand) string) loadResult {
	before := b.srv.IntrospectionCalls()
	for _, p := range []struct {
		file *string
		path string
	}{{&b.cfg.cpuprofile, "/api/ping"}, {&b.cfg.coldProfile, "/cpu/cold"}} {
		if *p.file != "" && path == p.path {
			if f, err := os.Create(*p.file); err == nil && pprof.StartCPUProfile(f) == nil {
				*p.file = "" // profile one run only
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
		}
	}
	cpu0 := cpuTime()
	res := closedLoop(ctx, conc, b.cfg.duration, pick, func(tok string) bool { return b.get(ctx, path, tok) })
	res.cpu = cpuTime() - cpu0
	res.calls = b.srv.IntrospectionCalls() - before
	return res
}

// closedLoop runs conc workers that each call get back to back for d,
// with a token from pick, until pick returns "". It measures req/s and
// latencies, not CPU.
func closedLoop(ctx context.Context, conc int, d time.Duration, pick func(*rand.Rand) string, get func(token string) bool) loadResult {
	var (
		mu  sync.Mutex
		res loadResult
		wg  sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := range conc {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			lat := make([]time.Duration, 0, 4096)
			errs := 0
			for time.Now().Before(deadline) && ctx.Err() == nil {
				tok := pick(rng)
				if tok == "" {
					break
				}
				t0 := time.Now()
				if !get(tok) {
					errs++
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.reqs += len(lat)
			res.errs += errs
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// get sends one request and reports whether it got 200.
func (b *bench) get(ctx context.Context, path, token string) bool {
	return get(ctx, b.client, b.api.URL+path, token)
}

// get sends GET url with token ("" for none) as a bearer token and reports
// whether the answer was 200.
func get(ctx context.Context, client *http.Client, url, token string) bool {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// variant is one side of a comparison.
type variant struct {
	name, path string
}

// interleave runs each variant once per round and merges each variant's
// runs. The order changes every round, cycling through all permutations, so
// that each variant runs in each position and after each other variant
// equally often: a measured A/A test showed a 3% advantage for whatever ran
// right after a CPU-heavy run. Every run starts after a full garbage
// collection so that no run inherits another's GC state.
func (b *bench) interleave(ctx context.Context, rounds int, vs []variant, pick func(*rand.Rand) string) []loadResult {
	out := make([]loadResult, len(vs))
	orders := permutations(len(vs))
	for round := range rounds {
		for _, i := range orders[round%len(orders)] {
			runtime.GC()
			r := b.load(ctx, vs[i].path, b.cfg.conc, pick)
			out[i].perRound = append(out[i].perRound, r.rps())
			out[i].reqs += r.reqs
			out[i].errs += r.errs
			out[i].elapsed += r.elapsed
			out[i].cpu += r.cpu
			out[i].calls += r.calls
			out[i].lat = append(out[i].lat, r.lat...)
		}
	}
	return out
}

// permutations returns every order of 0..n-1.
func permutations(n int) [][]int {
	if n == 1 {
		return [][]int{{0}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for pos := range n {
			q := append(append(append([]int{}, p[:pos]...), n-1), p[pos:]...)
			out = append(out, q)
		}
	}
	return out
}

// warm requests every token three times in random order from 64 workers and
// returns how many introspections that took.
func (b *bench) warm(ctx context.Context, path string) int64 {
	order := make([]string, 0, 3*len(b.tokens))
	for range 3 {
		order = append(order, b.tokens...)
	}
	rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	before := b.srv.IntrospectionCalls()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(order)); i = next.Add(1) - 1 {
				b.get(ctx, path, order[i])
			}
		})
	}
	wg.Wait()
	return b.srv.IntrospectionCalls() - before
}

// stampede sends 32 concurrent first requests with a new token, rounds
// times, and returns the mean introspections per new token.
func (b *bench) stampede(ctx context.Context, path string, rounds int) float64 {
	var total int64
	for range rounds {
		tok, err := b.mint()
		if err != nil {
			return -1
		}
		before := b.srv.IntrospectionCalls()
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				<-start
				b.get(ctx, path, tok)
			})
		}
		close(start)
		wg.Wait()
		total += b.srv.IntrospectionCalls() - before
	}
	return float64(total) / float64(rounds)
}

type target struct {
	name     string
	measured string
	ok       bool
}

func (b *bench) run(ctx context.Context) (string, int) {
	var r strings.Builder
	var targets []target
	add := func(name, measured string, ok bool) { targets = append(targets, target{name, measured, ok}) }
	c := b.cfg
	fmt.Fprintf(&r, "tokenguard load benchmark: %s, %d cores, GOMAXPROCS %d; upstream introspection delay %v; closed loop, %d connections, %v per run; %d rounds in every order for the cheap variants, 2 for the per-request introspection comparisons\n\n",
		runtime.Version(), runtime.NumCPU(), runtime.GOMAXPROCS(0), c.delay, c.conc, c.duration, c.rounds)

	if c.only == "cold" {
		return b.runColdOnly(ctx, &r)
	}
	row := func(name string, res loadResult) {
		p50, p99 := percentile(res.lat, 0.50), percentile(res.lat, 0.99)
		perK := 0.0
		if res.reqs > 0 {
			perK = float64(res.calls) * 1000 / float64(res.reqs)
		}
		fmt.Fprintf(&r, "| %s | %.0f | %s | %s | %s | %.1f | %d |\n", name, res.rps(), fmtDur(p50), fmtDur(p99), fmtDur(res.cpuPerReq()), perK, res.errs)
	}
	fmt.Fprintf(&r, "## Load over loopback HTTP\n\n| run | req/s | p50 | p99 | process CPU per req | introspections per 1k req | non-200 |\n|---|---:|---:|---:|---:|---:|---:|\n")

	hot := func(*rand.Rand) string { return b.hot }
	b.get(ctx, "/api/ping", b.hot)
	b.get(ctx, "/cached/ping", b.hot)
	// The cheap variants are compared among themselves; the per-request
	// introspection baseline, whose CPU-heavy runs would skew what follows
	// them, is compared with tokenguard in groups of its own.
	sdkRounds := 2
	hot3 := b.interleave(ctx, c.rounds, []variant{{"public", "/ping"}, {"tokenguard", "/api/ping"}, {"cached", "/cached/ping"}}, hot)
	// The public route against itself: how far apart two identical
	// variants measure in this run, the harness's noise floor.
	aa := b.interleave(ctx, c.rounds, []variant{{"public", "/ping"}, {"public again", "/ping"}}, hot)
	hotSDK := b.interleave(ctx, sdkRounds, []variant{{"tokenguard", "/api/ping"}, {"sdk", "/sdk/ping"}}, hot)
	hotRes := []loadResult{hot3[0], hot3[1], hotSDK[1], hot3[2]}
	row("public route, no auth (hot token sent)", hotRes[0])
	row("tokenguard, hot token", hotRes[1])
	row("ZITADEL SDK style: introspect every request, hot token", hotRes[2])
	row("go-cache style baseline (60 s map), hot token", hotRes[3])

	overPublic := func(res loadResult) time.Duration { return res.cpuPerReq() - hotRes[0].cpuPerReq() }
	fmt.Fprintf(&r, "\nWhat the route adds to the process CPU per request over the public route, hot token: tokenguard %s, go-cache style %s.\n",
		fmtDur(overPublic(hotRes[1])), fmtDur(overPublic(hotRes[3])))
	aaRatios := pairedRatios(aa[1], aa[0])
	aaMean, aaSE := meanSE(aaRatios)
	fmt.Fprintf(&r, "Noise floor (A/A: the public route against itself, %d rounds): median ratio %.3f, mean %.3f ± %.3f, single rounds from %.3f to %.3f.\n",
		len(aaRatios), median(aaRatios), aaMean, aaSE, slices.Min(aaRatios), slices.Max(aaRatios))
	fmt.Fprintf(&r, "\n| run | req/s | p50 | p99 | process CPU per req | introspections per 1k req | non-200 |\n|---|---:|---:|---:|---:|---:|---:|\n")

	warmTG := b.warm(ctx, "/api/ping")
	warmCached := b.warm(ctx, "/cached/ping")
	uniform := func(rng *rand.Rand) string { return b.tokens[rng.IntN(len(b.tokens))] }
	uni2 := b.interleave(ctx, c.rounds, []variant{{"tokenguard", "/api/ping"}, {"cached", "/cached/ping"}}, uniform)
	uniSDK := b.interleave(ctx, sdkRounds, []variant{{"tokenguard", "/api/ping"}, {"sdk", "/sdk/ping"}}, uniform)
	uniRes := []loadResult{uni2[0], uniSDK[1], uni2[1]}
	row(fmt.Sprintf("tokenguard, %d tokens uniform", c.tokens), uniRes[0])
	row(fmt.Sprintf("SDK style, %d tokens uniform", c.tokens), uniRes[1])
	row(fmt.Sprintf("go-cache style, %d tokens uniform", c.tokens), uniRes[2])

	zipfs := sync.Pool{}
	zipf := func(rng *rand.Rand) string {
		z, _ := zipfs.Get().(*rand.Zipf)
		if z == nil {
			z = rand.NewZipf(rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())), 1.1, 1, uint64(len(b.tokens)-1))
		}
		t := b.tokens[z.Uint64()]
		zipfs.Put(z)
		return t
	}
	zipf2 := b.interleave(ctx, c.rounds, []variant{{"tokenguard", "/api/ping"}, {"cached", "/cached/ping"}}, zipf)
	zipfSDK := b.interleave(ctx, sdkRounds, []variant{{"tokenguard", "/api/ping"}, {"sdk", "/sdk/ping"}}, zipf)
	zipfRes := []loadResult{zipf2[0], zipfSDK[1], zipf2[1]}
	row(fmt.Sprintf("tokenguard, %d tokens Zipf(1.1)", c.tokens), zipfRes[0])
	row(fmt.Sprintf("SDK style, %d tokens Zipf(1.1)", c.tokens), zipfRes[1])
	row(fmt.Sprintf("go-cache style, %d tokens Zipf(1.1)", c.tokens), zipfRes[2])

	b.srv.SetIntrospectionDelay(50 * time.Millisecond)
	stTG := b.stampede(ctx, "/api/ping", 5)
	stCached := b.stampede(ctx, "/cached/ping", 5)
	b.srv.SetIntrospectionDelay(c.delay)
	fmt.Fprintf(&r, "\nWarm-up (each of %d tokens 3 times, 64 concurrent workers): tokenguard %d introspections, go-cache style %d.\n", c.tokens, warmTG, warmCached)
	fmt.Fprintf(&r, "Stampede (32 concurrent first requests on a new token, upstream 50 ms, mean of 5): tokenguard %.1f introspections, go-cache style %.1f.\n", stTG, stCached)

	cold := b.runCold(ctx, &r, sdkRounds)
	fmt.Fprintf(&r, "A cold request over HTTP costs %s of process CPU (API, load generator and authorization server together) more than a hot one.\n",
		fmtDur(cold.http.cpuPerReq()-hotRes[1].cpuPerReq()))
	cpuHot, cpuCold, cpuPaced := b.runCPU(ctx, sdkRounds)
	cpuTarget := reportCPU(&r, cpuHot, cpuCold, cpuPaced, b.cfg.coldTokens)

	hit, goCacheHit := inProcessHit(b)
	hitNs, hitAllocs := hit.ns, hit.allocs
	mem := b.memoryPerEntry()
	fresh, reused := cpuPerMiss(b.appKey, b.srv.Issuer())
	fmt.Fprintf(&r, "\n## In process\n\n")
	fmt.Fprintf(&r, "- cache hit adds %.0f ns and %d allocations over the bare handler (testing.Benchmark); a hit of the go-cache style baseline adds %.0f ns and %d allocations\n", hitNs, hitAllocs, goCacheHit.ns, goCacheHit.allocs)
	fmt.Fprintf(&r, "- heap per cached entry at %d entries (typical ZITADEL result): %.0f bytes\n", c.entries, mem)
	fmt.Fprintf(&r, "- client CPU per introspection miss: fresh assertion %s, reused assertion %s\n", fmtDur(fresh), fmtDur(reused))

	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	// paired is the median over rounds of a's req/s over b's in the same
	// round: runs of one round are adjacent in time, so machine drift
	// cancels, and the median ignores a round that a burst of noise hit.
	paired := func(a, b loadResult) float64 { return median(pairedRatios(a, b)) }
	// atLeast adds a target on the paired ratio of a over b, shown with the
	// mean of the per-round ratios and its standard error.
	atLeast := func(name string, a, b loadResult, bar float64) {
		rs := pairedRatios(a, b)
		q := median(rs)
		m, se := meanSE(rs)
		add(name, fmt.Sprintf("%.3f (mean %.3f ± %.3f)", q, m, se), q >= bar)
	}
	atLeast("hot token: protected >= 0.95 x unprotected req/s", hotRes[1], hotRes[0], 0.95)
	add("cache hit adds < 1 us over the bare handler", fmt.Sprintf("%.0f ns", hitNs), hitNs < 1000)
	add("cache hit adds <= 3 allocations", fmt.Sprint(hitAllocs), hitAllocs <= 3)
	q := paired(hotSDK[0], hotSDK[1])
	add("hot token: >= 20 x per-request introspection", fmt.Sprintf("%.1f x", q), q >= 20)
	q = paired(uniSDK[0], uniSDK[1])
	add(fmt.Sprintf("%d tokens uniform: >= 10 x per-request introspection", c.tokens), fmt.Sprintf("%.1f x", q), q >= 10)
	atLeast("hot token: >= parity with the go-cache style baseline", hotRes[1], hotRes[3], 1)
	atLeast(fmt.Sprintf("%d tokens uniform: >= parity with the go-cache style baseline", c.tokens), uniRes[0], uniRes[2], 1)
	atLeast(fmt.Sprintf("%d tokens Zipf: >= parity with the go-cache style baseline", c.tokens), zipfRes[0], zipfRes[2], 1)
	add("stampede: 1 introspection per new token (baseline pays 32)", fmt.Sprintf("%.1f vs %.1f", stTG, stCached), stTG == 1)
	add("exactly one introspection per distinct token, 64 workers", fmt.Sprintf("%d for %d tokens", warmTG, c.tokens), warmTG == int64(c.tokens))
	cached := uniRes[0].calls + zipfRes[0].calls + hotRes[1].calls + hotSDK[0].calls + uniSDK[0].calls + zipfSDK[0].calls
	add("no introspections once warm (hot, uniform and Zipf runs)", fmt.Sprint(cached), cached == 0)
	add("<= 2 KiB heap per cached entry", fmt.Sprintf("%.0f B", mem), mem <= 2048)
	q = ratio(float64(reused), float64(fresh))
	add("miss path: reused assertion CPU <= 1/5 of fresh", fmt.Sprintf("%.3f", q), q > 0 && q <= 0.2)
	targets = append(targets, b.coldTargets(cold, cpuTarget)...)
	errs := 0
	for _, res := range slices.Concat(hot3, aa, hotSDK, uni2, uniSDK, zipf2, zipfSDK, []loadResult{cold.http, cold.sdk, cold.tls2, cold.tls1, cold.std1, cpuHot, cpuCold, cpuPaced}) {
		errs += res.errs
	}
	add("every load request answered 200", fmt.Sprint(errs, " non-200"), errs == 0)
	return reportTargets(&r, targets)
}

// runColdOnly is run with -only cold: the cold-token runs and the API CPU
// runs, and their targets.
func (b *bench) runColdOnly(ctx context.Context, r *strings.Builder) (string, int) {
	cold := b.runCold(ctx, r, 2)
	cpuHot, cpuCold, cpuPaced := b.runCPU(ctx, 2)
	targets := b.coldTargets(cold, reportCPU(r, cpuHot, cpuCold, cpuPaced, b.cfg.coldTokens))
	errs := 0
	for _, res := range []loadResult{cold.http, cold.sdk, cold.tls2, cold.tls1, cold.std1, cpuHot, cpuCold, cpuPaced} {
		errs += res.errs
	}
	targets = append(targets, target{"every load request answered 200", fmt.Sprint(errs, " non-200"), errs == 0})
	return reportTargets(r, targets)
}

// coldTargets returns the targets of the cold-token runs, cpu (the API CPU
// target) last.
func (b *bench) coldTargets(cold coldResults, cpu target) []target {
	q := median(pairedRatios(cold.http, cold.sdk))
	ts := []target{{fmt.Sprintf("cold tokens, HTTP, %d connections: >= 3 x per-request introspection", b.cfg.coldConc), fmt.Sprintf("%.1f x", q), q >= 3}}
	for _, t := range []struct {
		name string
		res  loadResult
	}{{"HTTP/2 offered", cold.tls2}, {"HTTP/1.1 only", cold.tls1}} {
		hs := perThousand(t.res.handshakes, t.res.reqs)
		ts = append(ts, target{fmt.Sprintf("cold tokens, TLS, %d connections, %s: <= 1 TLS handshake per 1,000 requests", b.cfg.coldConc, t.name),
			fmt.Sprintf("%.2f", hs), hs <= 1 && t.res.reqs > 0})
	}
	return append(ts, cpu)
}

// reportTargets writes the table of targets and returns the report and how
// many were missed.
func reportTargets(r *strings.Builder, targets []target) (string, int) {
	missed := 0
	fmt.Fprintf(r, "\n## Targets\n\nThroughput ratios are the median over rounds of the two sides' req/s in the same round; in brackets, the mean of those per-round ratios and its standard error.\n\n| target | measured | |\n|---|---:|---|\n")
	for _, t := range targets {
		verdict := "met"
		if !t.ok {
			verdict = "MISSED"
			missed++
		}
		fmt.Fprintf(r, "| %s | %s | %s |\n", t.name, t.measured, verdict)
	}
	fmt.Fprintf(r, "\n%d of %d targets met.\n", len(targets)-missed, len(targets))
	return r.String(), missed
}

// pairedRatios returns a's req/s over b's, round by round.
func pairedRatios(a, b loadResult) []float64 {
	var rs []float64
	for i := range min(len(a.perRound), len(b.perRound)) {
		if b.perRound[i] > 0 {
			rs = append(rs, a.perRound[i]/b.perRound[i])
		}
	}
	return rs
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// meanSE returns the mean of xs and its standard error.
func meanSE(xs []float64) (mean, se float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) < 2 {
		return mean, 0
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss/float64(len(xs)-1)) / math.Sqrt(float64(len(xs)))
}

func percentile(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.1f us", float64(d)/float64(time.Microsecond))
	}
}

// hitCost is what a cache hit adds over the bare handler, in process.
type hitCost struct {
	ns     float64
	allocs int64
}

// inProcessHit measures the cache-hit path of tokenguard and of the go-cache
// style baseline against the bare handler, with testing.Benchmark: extra
// ns/op and allocs/op.
func inProcessHit(b *bench) (tg, goCache hitCost) {
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	handlers := []http.Handler{bare, b.guard.Require(middleware.Role("admin"))(bare), b.goCache.wrap(bare)}
	req := httptest.NewRequest(http.MethodGet, "/api/ping", nil)
	req.Header.Set("Authorization", "Bearer "+b.hot)
	w := discardWriter{h: http.Header{}}
	for _, h := range handlers {
		h.ServeHTTP(w, req) // cached already; make sure
	}
	measure := func(h http.Handler) testing.BenchmarkResult {
		return testing.Benchmark(func(tb *testing.B) {
			tb.ReportAllocs()
			for tb.Loop() {
				h.ServeHTTP(w, req)
			}
		})
	}
	// Best of five interleaved runs each: noise on a shared machine only
	// ever adds time.
	ns := []float64{math.Inf(1), math.Inf(1), math.Inf(1)}
	allocs := make([]int64, 3)
	for range 5 {
		for i, h := range handlers {
			r := measure(h)
			ns[i] = min(ns[i], float64(r.T.Nanoseconds())/float64(r.N))
			allocs[i] = r.AllocsPerOp()
		}
	}
	return hitCost{ns[1] - ns[0], allocs[1] - allocs[0]}, hitCost{ns[2] - ns[0], allocs[2] - allocs[0]}
}

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d discardWriter) WriteHeader(int)             {}

// cannedTransport answers with one recorded introspection response, so that
// in-process measurements see only the client.
type cannedTransport struct{ body []byte }

func (c cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, r.Body)
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(string(c.body))), ContentLength: int64(len(c.body)), Request: r}, nil
}

// typicalBody records a real introspection response of the development
// server for a service user's token with two roles.
func (b *bench) typicalBody() []byte {
	key, _ := clientauth.ParseKey(b.appKey)
	auth, _ := key.PrivateKeyJWT(b.srv.Issuer())
	var body []byte
	rec := recordingTransport{base: http.DefaultTransport, body: &body}
	c, _ := introspect.New(b.srv.Issuer()+devserver.IntrospectPath, auth, introspect.WithoutCache(), introspect.WithHTTPClient(&http.Client{Transport: rec}))
	_, _ = c.Introspect(context.Background(), b.hot)
	return body
}

type recordingTransport struct {
	base http.RoundTripper
	body *[]byte
}

func (t recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	*t.body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(strings.NewReader(string(*t.body)))
	return resp, nil
}

// memoryPerEntry fills a cache with entries distinct tokens' results through
// the real Introspect path and returns the heap growth per entry.
func (b *bench) memoryPerEntry() float64 {
	body := b.typicalBody()
	key, _ := clientauth.ParseKey(b.appKey)
	auth, _ := key.PrivateKeyJWT(b.srv.Issuer())
	c, _ := introspect.New("https://issuer.example/oauth/v2/introspect", auth, introspect.WithCacheSize(b.cfg.entries),
		introspect.WithHTTPClient(&http.Client{Transport: cannedTransport{body}}))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range b.cfg.entries {
		_, _ = c.Introspect(context.Background(), fmt.Sprintf("token-%09d", i))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(c)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(b.cfg.entries)
}

// cpuPerMiss returns the process CPU time per uncached introspection with a
// fresh and with a reused client assertion.
func cpuPerMiss(appKey []byte, issuer string) (fresh, reused time.Duration) {
	key, _ := clientauth.ParseKey(appKey)
	body := []byte(`{"active":true,"aud":"p","sub":"u","exp":4102444800}`)
	measure := func(n int, opts ...clientauth.Option) time.Duration {
		auth, _ := key.PrivateKeyJWT(issuer, opts...)
		c, _ := introspect.New("https://issuer.example/oauth/v2/introspect", auth, introspect.WithoutCache(),
			introspect.WithHTTPClient(&http.Client{Transport: cannedTransport{body}}))
		_, _ = c.Introspect(context.Background(), "warm")
		start := cpuTime()
		for range n {
			_, _ = c.Introspect(context.Background(), "t")
		}
		return (cpuTime() - start) / time.Duration(n)
	}
	return measure(300, clientauth.WithFreshAssertions()), measure(3000)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
