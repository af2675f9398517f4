// Command fleetbench measures a fleet of tokenguard replicas that share one
// real Redis through rediscache (issue 13's fleet targets):
//
//	go run ./rediscache/internal/fleetbench [-replicas 8] [-tokens 10000] [-requests 100000] [-concurrency 16]
//	                                        [-trials 200] [-delay 2ms] [-poll 1ms] [-check]
//
// It starts its own redis-server on a free loopback port (without
// persistence), the development server in process, and the replicas in
// process: each a tokenguard.Guard whose introspection client has a
// rediscache shared cache and a Listen goroutine, behind its own HTTP server
// on loopback. Clients send requests with tokens drawn by Zipf(1.1) to
// random replicas; then, trial by trial, a user's token is cached on every
// replica, the user locked at the development server, and InvalidateSubject
// called on one replica, while every other replica is polled until it
// refuses the token. See BENCHMARKS.md.
//
// It lives in the rediscache module so that the root module does not depend
// on go-redis.
//
// Exit status: 0 success; 1 a target was missed (with -check); 2 bad usage;
// 3 the benchmark could not be set up (redis-server missing, say).
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
	"github.com/tokenguard/tokenguard/rediscache"
)

// Exit statuses.
const (
	exitOK     = 0
	exitMissed = 1
	exitUsage  = 2
	exitConfig = 3
)

// Targets of issue 13.
const (
	maxPerToken  = 1.05
	maxPropagate = 100 * time.Millisecond
)

// config is the command line.
type config struct {
	replicas, tokens, requests, conc, trials int
	delay, poll, giveUp                      time.Duration
	check                                    bool
}

// result is what a run measured.
type result struct {
	requests, non200 int
	distinct         int   // tokens requested at least once
	introspections   int64 // during the load phase
	elapsed          time.Duration
	propagation      []time.Duration // per trial and other replica: InvalidateSubject to refusal
	notRefused       int             // samples that were still accepted at the give-up time
	redisErrors      int64           // Cache.Errors over all replicas
}

func (r result) perToken() float64 {
	if r.distinct == 0 {
		return 0
	}
	return float64(r.introspections) / float64(r.distinct)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fleetbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	fs.IntVar(&c.replicas, "replicas", 8, "replicas sharing the Redis")
	fs.IntVar(&c.tokens, "tokens", 10_000, "distinct tokens; requests draw them by Zipf(1.1)")
	fs.IntVar(&c.requests, "requests", 100_000, "requests of the load phase")
	fs.IntVar(&c.conc, "concurrency", 16, "concurrent clients of the load phase")
	fs.IntVar(&c.trials, "trials", 200, "invalidation trials, one user each")
	fs.DurationVar(&c.delay, "delay", 2*time.Millisecond, "introspection delay of the authorization server")
	fs.DurationVar(&c.poll, "poll", time.Millisecond, "how often a replica is asked whether it refuses the invalidated user")
	fs.DurationVar(&c.giveUp, "give-up", 2*time.Second, "how long a replica may take to refuse before the sample counts as not refused")
	fs.BoolVar(&c.check, "check", false, "exit with status 1 when a target is missed")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 || c.replicas < 2 || c.tokens < 2 || c.requests < 1 || c.conc < 1 || c.trials < 1 || c.delay < 0 || c.poll <= 0 || c.giveUp <= 0 {
		fmt.Fprintln(stderr, "fleetbench: bad arguments (replicas and tokens at least 2; requests, concurrency, trials, poll and give-up positive)")
		return exitUsage
	}
	res, err := fleet(ctx, c)
	if err != nil {
		fmt.Fprintln(stderr, "fleetbench:", err)
		return exitConfig
	}
	missed := report(stdout, c, res)
	if c.check && missed > 0 {
		fmt.Fprintf(stderr, "fleetbench: %d target(s) missed\n", missed)
		return exitMissed
	}
	return exitOK
}

// report writes the results and returns how many targets were missed.
func report(w io.Writer, c config, r result) int {
	fmt.Fprintf(w, "tokenguard fleet benchmark: %s, %d cores, GOMAXPROCS %d; %d replicas, one redis-server, upstream introspection delay %v\n\n",
		runtime.Version(), runtime.NumCPU(), runtime.GOMAXPROCS(0), c.replicas, c.delay)
	fmt.Fprintf(w, "## Load: %d tokens by Zipf(1.1), random replica per request, %d clients over loopback HTTP\n\n", c.tokens, c.conc)
	fmt.Fprintf(w, "- %d requests in %v (%.0f req/s), %d non-200\n", r.requests, r.elapsed.Round(time.Millisecond), float64(r.requests)/r.elapsed.Seconds(), r.non200)
	fmt.Fprintf(w, "- %d introspections for %d distinct tokens requested: %.3f per distinct token across the fleet\n", r.introspections, r.distinct, r.perToken())
	fmt.Fprintf(w, "- Redis errors counted by the replicas: %d\n", r.redisErrors)
	s := slices.Sorted(slices.Values(r.propagation))
	q := func(p float64) time.Duration {
		if len(s) == 0 {
			return 0
		}
		return s[min(len(s)-1, int(p*float64(len(s))))]
	}
	fmt.Fprintf(w, "\n## Invalidation: InvalidateSubject on one replica until each other replica refuses the user (%d trials, polled every %v)\n\n", c.trials, c.poll)
	fmt.Fprintf(w, "| samples | not refused within %v | p50 | p90 | p99 | max |\n|---:|---:|---:|---:|---:|---:|\n", c.giveUp)
	fmt.Fprintf(w, "| %d | %d | %s | %s | %s | %s |\n", len(s), r.notRefused, fmtDur(q(0.50)), fmtDur(q(0.90)), fmtDur(q(0.99)), fmtDur(q(1)))

	type target struct {
		name, measured string
		ok             bool
	}
	targets := []target{
		{fmt.Sprintf("introspections per distinct token across the fleet <= %.2f", maxPerToken), fmt.Sprintf("%.3f", r.perToken()), r.distinct > 0 && r.perToken() <= maxPerToken},
		{fmt.Sprintf("InvalidateSubject refuses the user on every replica within %v at p99", maxPropagate), fmtDur(q(0.99)), len(s) > 0 && r.notRefused == 0 && q(0.99) <= maxPropagate},
		{"every load request answered 200", fmt.Sprint(r.non200, " non-200"), r.non200 == 0},
	}
	missed := 0
	fmt.Fprintf(w, "\n## Targets\n\n| target | measured | |\n|---|---:|---|\n")
	for _, t := range targets {
		verdict := "met"
		if !t.ok {
			verdict = "MISSED"
			missed++
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", t.name, t.measured, verdict)
	}
	fmt.Fprintf(w, "\n%d of %d targets met.\n", len(targets)-missed, len(targets))
	return missed
}

// replica is one API instance of the fleet.
type replica struct {
	guard  *tokenguard.Guard
	shared *rediscache.Cache
	rdb    *redis.Client
	h      http.Handler
	srv    *httptest.Server
}

// fleet sets everything up, runs both phases and tears everything down.
func fleet(ctx context.Context, c config) (result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	addr, stopRedis, err := startRedis()
	if err != nil {
		return result{}, err
	}
	defer stopRedis()

	as, err := devserver.Start(devserver.WithIntrospectionDelay(c.delay))
	if err != nil {
		return result{}, err
	}
	defer as.Close()
	project := as.CreateProject("fleet")
	app, err := as.CreateAPIApp(project.ID)
	if err != nil {
		return result{}, err
	}
	key, err := clientauth.ParseKey(app.KeyJSON)
	if err != nil {
		return result{}, err
	}
	secret := make([]byte, rediscache.MinSecretSize)
	_, _ = rand.Read(secret)
	discard := slog.New(slog.DiscardHandler)
	pong := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cl, ok := middleware.ClaimsFromContext(r.Context()); !ok || cl.Subject == "" {
			http.Error(w, "no claims", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "pong")
	})

	var wg sync.WaitGroup // the Listen goroutines
	defer wg.Wait()
	defer cancel()
	reps := make([]*replica, c.replicas)
	defer func() {
		for _, r := range reps {
			if r != nil {
				r.srv.Close()
			}
		}
	}()
	for i := range reps {
		rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		defer rdb.Close()
		shared, err := rediscache.New(rdb, as.Issuer()+" "+key.ClientID, secret, rediscache.WithLogger(discard))
		if err != nil {
			return result{}, err
		}
		g, err := tokenguard.New(ctx, tokenguard.Config{Issuer: as.Issuer(), Key: key, ProjectID: project.ID,
			IntrospectOptions: []introspect.Option{introspect.WithSharedCache(shared)}}, middleware.WithLogger(discard))
		if err != nil {
			return result{}, err
		}
		wg.Go(func() { _ = shared.Listen(ctx, g.Client()) })
		h := g.Wrap(pong)
		reps[i] = &replica{guard: g, shared: shared, rdb: rdb, h: h, srv: httptest.NewServer(h)}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if !slices.ContainsFunc(reps, func(r *replica) bool { return !r.shared.Listening() }) {
			break
		}
		if time.Now().After(deadline) {
			return result{}, errors.New("replicas did not subscribe to Redis within 10s")
		}
	}

	loadUser, err := as.CreateServiceUser("fleet-load", devserver.Grant{ProjectID: project.ID, Roles: []string{"reader"}})
	if err != nil {
		return result{}, err
	}
	tokens, err := mintMany(c.tokens, func(int) (string, error) {
		return as.MintToken(loadUser.UserID, devserver.TokenOptions{ProjectIDs: []string{project.ID}})
	})
	if err != nil {
		return result{}, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = c.conc
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	var res result
	res.requests, res.non200, res.distinct, res.introspections, res.elapsed = load(ctx, c, reps, tokens, client, as)
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	res.propagation, res.notRefused, err = invalidations(ctx, c, reps, as, project.ID)
	if err != nil {
		return result{}, err
	}
	for _, r := range reps {
		res.redisErrors += r.shared.Errors()
	}
	return res, nil
}

// load sends c.requests requests from c.conc clients, each to a random
// replica with a token drawn by Zipf(1.1), and counts the introspections the
// authorization server answered meanwhile.
func load(ctx context.Context, c config, reps []*replica, tokens []string, client *http.Client, as *devserver.Server) (reqs, non200, distinct int, calls int64, elapsed time.Duration) {
	seen := make([]atomic.Bool, len(tokens))
	var next, bad atomic.Int64
	before := as.IntrospectionCalls()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range c.conc {
		wg.Go(func() {
			rng := mrand.New(mrand.NewPCG(uint64(w), uint64(start.UnixNano())))
			zipf := mrand.NewZipf(rng, 1.1, 1, uint64(len(tokens)-1))
			for next.Add(1) <= int64(c.requests) && ctx.Err() == nil {
				i := zipf.Uint64()
				seen[i].Store(true)
				if !get(ctx, client, reps[rng.IntN(len(reps))].srv.URL, tokens[i]) {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed = time.Since(start)
	calls = as.IntrospectionCalls() - before
	for i := range seen {
		if seen[i].Load() {
			distinct++
		}
	}
	return c.requests, int(bad.Load()), distinct, calls, elapsed
}

// invalidations runs c.trials trials, each with a user of its own: the
// user's token is cached on every replica, the user is locked at the
// authorization server (so that an introspection now says inactive), and
// InvalidateSubject is called on a random replica while every other replica
// is asked every c.poll, in process through its handler, until it refuses
// the token. It returns, per trial and other replica, the time from the
// call to the refusal.
func invalidations(ctx context.Context, c config, reps []*replica, as *devserver.Server, projectID string) ([]time.Duration, int, error) {
	var out []time.Duration
	notRefused := 0
	for trial := range c.trials {
		u, err := as.CreateServiceUser(fmt.Sprintf("fleet-trial-%d", trial), devserver.Grant{ProjectID: projectID, Roles: []string{"reader"}})
		if err != nil {
			return nil, 0, err
		}
		tok, err := as.MintToken(u.UserID, devserver.TokenOptions{ProjectIDs: []string{projectID}})
		if err != nil {
			return nil, 0, err
		}
		for i, r := range reps {
			if code := serve(ctx, r.h, tok); code != http.StatusOK {
				return nil, 0, fmt.Errorf("trial %d: replica %d answered %d to a fresh token", trial, i, code)
			}
		}
		if err := as.LockUser(u.UserID, true); err != nil {
			return nil, 0, err
		}
		from := mrand.IntN(len(reps))
		start := make(chan struct{})
		var t0 time.Time
		var mu sync.Mutex // guards out and notRefused
		var wg sync.WaitGroup
		for i, r := range reps {
			if i == from {
				continue
			}
			wg.Go(func() {
				<-start
				for {
					if code := serve(ctx, r.h, tok); code != http.StatusOK {
						d := time.Since(t0)
						mu.Lock()
						out = append(out, d)
						mu.Unlock()
						return
					}
					if time.Since(t0) > c.giveUp || ctx.Err() != nil {
						mu.Lock()
						notRefused++
						mu.Unlock()
						return
					}
					time.Sleep(c.poll)
				}
			})
		}
		t0 = time.Now()
		close(start)
		reps[from].guard.InvalidateSubject(u.UserID)
		wg.Wait()
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
	}
	return out, notRefused, nil
}

// serve asks h in process about token and returns the status.
func serve(ctx context.Context, h http.Handler, token string) int {
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code
}

// get sends one request over HTTP and reports whether it got 200.
func get(ctx context.Context, client *http.Client, base, token string) bool {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// mintMany calls mint n times on every core.
func mintMany(n int, mint func(int) (string, error)) ([]string, error) {
	out := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var err error
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				t, e := mint(int(i))
				if e != nil {
					once.Do(func() { err = e })
					return
				}
				out[i] = t
			}
		})
	}
	wg.Wait()
	return out, err
}

// startRedis starts redis-server without persistence on a free loopback
// port and returns its address and a function that stops it.
func startRedis() (addr string, stop func(), _ error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, errors.New("redis-server not found in PATH (apt-get install redis-server); the fleet benchmark needs a real Redis")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir, err := os.MkdirTemp("", "fleetbench-redis-")
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	stop = func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		os.RemoveAll(dir)
	}
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	for deadline := time.Now().Add(10 * time.Second); rdb.Ping(context.Background()).Err() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("redis-server on %s did not start within 10s", addr)
		}
	}
	return addr, stop, nil
}

func fmtDur(d time.Duration) string {
	if d >= time.Millisecond {
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.1f us", float64(d)/float64(time.Microsecond))
}
