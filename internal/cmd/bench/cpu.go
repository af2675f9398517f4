package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
)

// The API's own CPU per cold request. The other runs share one process
// with the authorization server and the load generator, whose CPU would
// count against every miss. Here both run in a child process (this program
// re-executed with asOnlyEnv set), so that this process's CPU during a run
// is the API's alone. The load generator cannot stay here: a run of hot
// tokens reaches ten times the request rate of a cold run, and its cost per
// request changes with the rate (idle threads woken, fewer batched reads),
// so that it would not cancel out of cold minus hot.

// asOnlyEnv, when set to "1" in the environment, makes the program (or the
// test binary, see TestMain) run only the development server: see asOnly.
const asOnlyEnv = "TOKENGUARD_BENCH_AS_ONLY"

// maxColdCPU is issue 13's bound on the API's CPU per cold request above a
// hot one.
const maxColdCPU = 150 * time.Microsecond

// asHandoff is what the child process prints, one JSON line on stdout,
// once it is ready.
type asHandoff struct {
	Issuer    string `json:"issuer"`
	ProjectID string `json:"project_id"`
	KeyJSON   []byte `json:"key_json"`
	Pool      int    `json:"pool"` // cold tokens minted, each used once per run
}

// childCommand is a line the parent writes to the child's stdin: a load
// run, or the warm-up that opens a new guard's connections. The child
// answers each with a childResult line.
type childCommand struct {
	Op       string        `json:"op"` // "load" or "warm"
	URL      string        `json:"url"`
	Cold     bool          `json:"cold"` // tokens of the pool, each once; else the hot token
	Conc     int           `json:"conc"`
	Duration time.Duration `json:"duration"`
	// Rate, when positive, paces the run at that many requests per second
	// in all (each worker waits for its turn) instead of back to back.
	Rate float64 `json:"rate,omitempty"`
}

type childResult struct {
	Reqs    int             `json:"reqs"`
	Errs    int             `json:"errs"`
	Elapsed time.Duration   `json:"elapsed"`
	Lat     []time.Duration `json:"lat"`
	RanOut  bool            `json:"ran_out"`
	Err     string          `json:"err,omitempty"`
}

// asOnly runs the development server and the load generator, with args
// -delay, -tokens and -warmups: it prints an asHandoff line on stdout, then
// runs the childCommands read from stdin until stdin is closed. It returns
// the exit status.
func asOnly(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench (authorization server and load generator)", flag.ContinueOnError)
	fs.SetOutput(stderr)
	delay := fs.Duration("delay", 2*time.Millisecond, "introspection delay")
	tokens := fs.Int("tokens", 1000, "cold tokens to mint")
	warmups := fs.Int("warmups", 8, "warm-up tokens to mint")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	srv, err := devserver.Start(devserver.WithIntrospectionDelay(*delay))
	if err != nil {
		fmt.Fprintln(stderr, "bench: authorization server:", err)
		return exitConfig
	}
	defer srv.Close()
	project := srv.CreateProject("bench-cpu")
	app, err := srv.CreateAPIApp(project.ID)
	if err != nil {
		fmt.Fprintln(stderr, "bench: authorization server:", err)
		return exitConfig
	}
	user, err := srv.CreateServiceUser("bench-cpu-bot", devserver.Grant{ProjectID: project.ID, Roles: []string{"admin", "reader"}})
	if err != nil {
		fmt.Fprintln(stderr, "bench: authorization server:", err)
		return exitConfig
	}
	b := &bench{srv: srv, project: project, user: user}
	all, err := b.mintMany(1 + *tokens + *warmups)
	if err != nil {
		fmt.Fprintln(stderr, "bench: authorization server:", err)
		return exitConfig
	}
	g := &loadGen{hot: all[0], pool: all[1 : 1+*tokens], warmups: all[1+*tokens:]}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	g.client = &http.Client{Transport: tr}
	if err := json.NewEncoder(stdout).Encode(asHandoff{Issuer: srv.Issuer(), ProjectID: project.ID, KeyJSON: app.KeyJSON, Pool: len(g.pool)}); err != nil {
		return exitConfig
	}
	dec, enc := json.NewDecoder(stdin), json.NewEncoder(stdout)
	for {
		var cmd childCommand
		if err := dec.Decode(&cmd); err != nil {
			return exitOK // the parent closed stdin or exited
		}
		if err := enc.Encode(g.do(cmd)); err != nil {
			return exitOK
		}
	}
}

// loadGen is the child's load generator.
type loadGen struct {
	client        *http.Client
	hot           string
	pool, warmups []string
	next          atomic.Int64 // index into pool
}

func (g *loadGen) do(cmd childCommand) childResult {
	ctx := context.Background()
	send := func(tok string) bool { return get(ctx, g.client, cmd.URL, tok) }
	switch cmd.Op {
	case "warm": // one request, then one per connection at once
		if !send(g.warmups[0]) {
			return childResult{Errs: 1}
		}
		var wg sync.WaitGroup
		var errs atomic.Int64
		for _, t := range g.warmups {
			wg.Go(func() {
				if !send(t) {
					errs.Add(1)
				}
			})
		}
		wg.Wait()
		return childResult{Errs: int(errs.Load())}
	case "load":
		pick := func(*rand.Rand) string { return g.hot }
		if cmd.Cold {
			g.next.Store(0)
			pick = func(*rand.Rand) string {
				if i := g.next.Add(1) - 1; i < int64(len(g.pool)) {
					return g.pool[i]
				}
				return ""
			}
		}
		if cmd.Rate > 0 {
			pick = paced(pick, cmd.Conc, cmd.Rate)
		}
		runtime.GC()
		r := closedLoop(ctx, cmd.Conc, cmd.Duration, pick, send)
		return childResult{Reqs: r.reqs, Errs: r.errs, Elapsed: r.elapsed, Lat: r.lat, RanOut: cmd.Cold && g.next.Load() >= int64(len(g.pool))}
	}
	return childResult{Err: fmt.Sprintf("unknown op %q", cmd.Op)}
}

// paced returns pick made to wait, in each of conc workers, until its next
// request is due at rate requests per second in all.
func paced(pick func(*rand.Rand) string, conc int, rate float64) func(*rand.Rand) string {
	interval := time.Duration(float64(conc) / rate * float64(time.Second))
	var mu sync.Mutex
	due := map[*rand.Rand]time.Time{} // each worker has its own rng
	return func(rng *rand.Rand) string {
		mu.Lock()
		next, ok := due[rng]
		if !ok {
			next = time.Now().Add(time.Duration(rng.Int64N(int64(interval)))) // spread the workers
		}
		due[rng] = next.Add(interval)
		mu.Unlock()
		time.Sleep(time.Until(next))
		return pick(rng)
	}
}

// cpuSetup is the API of the CPU runs, with the authorization server and
// the load generator in a child process.
type cpuSetup struct {
	child   *exec.Cmd
	stdin   io.WriteCloser
	out     *json.Decoder
	enc     *json.Encoder
	as      asHandoff
	hot     *tokenguard.Guard
	cold    atomic.Pointer[guardHandler] // a new guard for each cold run
	newCold func() (*guardHandler, error)
}

// setupCPU starts the child process and adds the hot and cold routes of the
// CPU runs to mux.
func (b *bench) setupCPU(ctx context.Context, mux *http.ServeMux, next http.Handler) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	c := &b.cpu
	c.child = exec.CommandContext(ctx, exe, "-delay", b.cfg.delay.String(), "-tokens", fmt.Sprint(b.cfg.coldTokens), "-warmups", fmt.Sprint(b.cfg.coldConc))
	c.child.Env = append(os.Environ(), asOnlyEnv+"=1")
	c.child.Stderr = os.Stderr
	if c.stdin, err = c.child.StdinPipe(); err != nil {
		return err
	}
	out, err := c.child.StdoutPipe()
	if err != nil {
		return err
	}
	if err := c.child.Start(); err != nil {
		return fmt.Errorf("starting the authorization server's process: %w", err)
	}
	c.out, c.enc = json.NewDecoder(bufio.NewReaderSize(out, 1<<20)), json.NewEncoder(c.stdin)
	if err := c.out.Decode(&c.as); err != nil || c.as.Pool == 0 {
		return fmt.Errorf("the authorization server's process printed no usable handoff (%v)", err)
	}
	keyFile := filepath.Join(b.dir, "api-cpu.json")
	if err := os.WriteFile(keyFile, c.as.KeyJSON, 0o600); err != nil {
		return err
	}
	// Default settings, as tokenguard.New makes them; the transport is
	// made here only so that a cold run can close the previous guard's.
	newGuard := func(tr *http.Transport) (*tokenguard.Guard, error) {
		return tokenguard.New(ctx, tokenguard.Config{Issuer: c.as.Issuer, KeyFile: keyFile, ProjectID: c.as.ProjectID,
			HTTPClient: &http.Client{Transport: tr}}, middleware.WithLogger(discardLogger()))
	}
	if c.hot, err = newGuard(introspect.NewTransport()); err != nil {
		return err
	}
	c.newCold = func() (*guardHandler, error) {
		tr := introspect.NewTransport()
		g, err := newGuard(tr)
		if err != nil {
			return nil, err
		}
		return &guardHandler{h: g.Wrap(next), tr: tr}, nil
	}
	gh, err := c.newCold()
	if err != nil {
		return err
	}
	c.cold.Store(gh)
	mux.Handle("GET /cpu/hot", c.hot.Wrap(next))
	mux.Handle("GET /cpu/cold", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.cold.Load().h.ServeHTTP(w, r) }))
	return nil
}

// remote has the child run cmd and returns its result, with this
// process's CPU time during the run: the API's.
func (c *cpuSetup) remote(cmd childCommand) loadResult {
	cpu0 := cpuTime()
	var r childResult
	if err := c.enc.Encode(cmd); err != nil {
		return loadResult{errs: 1}
	}
	if err := c.out.Decode(&r); err != nil || r.Err != "" {
		return loadResult{errs: 1}
	}
	return loadResult{reqs: r.Reqs, errs: r.Errs, elapsed: r.Elapsed, lat: r.Lat, ranOut: r.RanOut, cpu: cpuTime() - cpu0}
}

func (c *cpuSetup) close() {
	if c.child == nil || c.child.Process == nil {
		return
	}
	if c.stdin != nil {
		c.stdin.Close() // the child exits
	}
	done := make(chan struct{})
	go func() { _ = c.child.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.child.Process.Kill()
		<-done
	}
}

// runCPU alternates hot and cold runs against the API, driven by the child
// process, rounds times each, and returns them: hot back to back, cold, and
// hot again, paced at the request rate the cold run of the round reached.
// Each cold run gets a new guard and opens its connections first, as in
// coldInterleave.
func (b *bench) runCPU(ctx context.Context, rounds int) (hot, cold, hotPaced loadResult) {
	c := &b.cpu
	merge := func(into *loadResult, r loadResult) {
		into.perRound = append(into.perRound, r.rps())
		into.reqs += r.reqs
		into.errs += r.errs
		into.elapsed += r.elapsed
		into.cpu += r.cpu
		into.lat = append(into.lat, r.lat...)
		into.ranOut = into.ranOut || r.ranOut
	}
	c.remote(childCommand{Op: "load", URL: b.api.URL + "/cpu/hot", Conc: 1, Duration: time.Millisecond}) // the hot token cached
	for round := range rounds {
		for _, which := range [][]int{{0, 1}, {1, 0}}[round%2] {
			if ctx.Err() != nil {
				return hot, cold, hotPaced
			}
			if which == 0 {
				runtime.GC()
				merge(&hot, c.remote(childCommand{Op: "load", URL: b.api.URL + "/cpu/hot", Conc: b.cfg.coldConc, Duration: b.cfg.duration}))
				continue
			}
			gh, err := c.newCold()
			if err != nil {
				cold.errs++
				continue
			}
			c.cold.Swap(gh).tr.CloseIdleConnections()
			cold.errs += c.remote(childCommand{Op: "warm", URL: b.api.URL + "/cpu/cold"}).errs
			runtime.GC()
			var stop func()
			if b.cfg.coldProfile != "" {
				if f, err := os.Create(b.cfg.coldProfile); err == nil && pprof.StartCPUProfile(f) == nil {
					b.cfg.coldProfile = "" // profile one run only
					stop = func() { pprof.StopCPUProfile(); f.Close() }
				}
			}
			r := c.remote(childCommand{Op: "load", URL: b.api.URL + "/cpu/cold", Cold: true, Conc: b.cfg.coldConc, Duration: b.cfg.duration})
			if stop != nil {
				stop()
			}
			merge(&cold, r)
			if r.reqs > 0 {
				runtime.GC()
				merge(&hotPaced, c.remote(childCommand{Op: "load", URL: b.api.URL + "/cpu/hot", Conc: b.cfg.coldConc, Duration: b.cfg.duration, Rate: r.rps()}))
			}
		}
	}
	return hot, cold, hotPaced
}

// reportCPU writes the CPU runs' table and returns their target.
func reportCPU(r *strings.Builder, hot, cold, hotPaced loadResult, pool int) target {
	fmt.Fprintf(r, "\n## API CPU per request, the authorization server in another process with the load generator\n\n")
	fmt.Fprintf(r, "| run | req/s | p50 | p99 | API CPU per req | non-200 |\n|---|---:|---:|---:|---:|---:|\n")
	for _, row := range []struct {
		name string
		res  loadResult
	}{{"tokenguard, hot token", hot}, {"tokenguard, cold tokens", cold}, {"tokenguard, hot token, paced at the cold runs' rate", hotPaced}} {
		fmt.Fprintf(r, "| %s | %.0f | %s | %s | %s | %d |\n", row.name, row.res.rps(), fmtDur(percentile(row.res.lat, 0.50)),
			fmtDur(percentile(row.res.lat, 0.99)), fmtDur(row.res.cpuPerReq()), row.res.errs)
	}
	extra := cold.cpuPerReq() - hot.cpuPerReq()
	fmt.Fprintf(r, "\nA cold request costs the API %s of CPU more than a hot one (the API's process alone: the authorization server and the load generator run in another).\n", fmtDur(extra))
	fmt.Fprintf(r, "At the same request rate (the hot token paced at the cold runs' rate), a cold request costs the API %s more: the rest, %s per request, is what serving a lower rate costs (threads that go idle and are woken), not the miss.\n",
		fmtDur(cold.cpuPerReq()-hotPaced.cpuPerReq()), fmtDur(hotPaced.cpuPerReq()-hot.cpuPerReq()))
	if cold.ranOut {
		fmt.Fprintf(r, "Some cold runs used up the %d tokens before the end of their time: raise -cold-tokens.\n", pool)
	}
	return target{fmt.Sprintf("cold tokens: <= %s of API CPU per request above a hot one", fmtDur(maxColdCPU)), fmtDur(extra),
		hot.reqs > 0 && cold.reqs > 0 && extra <= maxColdCPU}
}

// errNoChild is returned by asOnlyMain when the environment does not ask
// for the authorization server.
var errNoChild = errors.New("bench: not the authorization server's process")

// asOnlyMain runs asOnly when the environment asks for it.
func asOnlyMain() (int, error) {
	if os.Getenv(asOnlyEnv) != "1" {
		return 0, errNoChild
	}
	return asOnly(os.Args[1:], os.Stdin, os.Stdout, os.Stderr), nil
}
