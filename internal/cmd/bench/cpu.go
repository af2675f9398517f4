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
// with the authorization server, whose CPU per introspection would count
// against every miss. Here the development server runs in a child process
// (this program re-executed with asOnlyEnv set), so that the process's CPU
// is the API's and the load generator's only; the load generator costs the
// same for a hot and a cold request, so cold minus hot is what a miss costs
// the API.

// asOnlyEnv, when set to "1" in the environment, makes the program (or the
// test binary, see TestMain) run only the development server: see asOnly.
const asOnlyEnv = "TOKENGUARD_BENCH_AS_ONLY"

// maxColdCPU is issue 13's bound on the API's CPU per cold request above a
// hot one.
const maxColdCPU = 150 * time.Microsecond

// asHandoff is what the authorization server's process prints, one JSON
// line on stdout, once it is ready.
type asHandoff struct {
	Issuer    string   `json:"issuer"`
	ProjectID string   `json:"project_id"`
	KeyJSON   []byte   `json:"key_json"`
	Hot       string   `json:"hot"`
	Pool      []string `json:"pool"`    // cold tokens, each used once per run
	Warmups   []string `json:"warmups"` // tokens that open the connections before a cold run
}

// asOnly runs the development server with args -delay, -tokens and
// -warmups, prints an asHandoff line on stdout and serves until stdin is
// closed. It returns the exit status.
func asOnly(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench (authorization server)", flag.ContinueOnError)
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
	h := asHandoff{Issuer: srv.Issuer(), ProjectID: project.ID, KeyJSON: app.KeyJSON}
	var all []string
	if all, err = b.mintMany(1 + *tokens + *warmups); err != nil {
		fmt.Fprintln(stderr, "bench: authorization server:", err)
		return exitConfig
	}
	h.Hot, h.Pool, h.Warmups = all[0], all[1:1+*tokens], all[1+*tokens:]
	if err := json.NewEncoder(stdout).Encode(h); err != nil {
		return exitConfig
	}
	_, _ = io.Copy(io.Discard, stdin) // until the parent closes it or exits
	return exitOK
}

// cpuSetup is the API of the CPU runs, with its authorization server in a
// child process.
type cpuSetup struct {
	child   *exec.Cmd
	stdin   io.WriteCloser
	as      asHandoff
	hot     *tokenguard.Guard
	cold    atomic.Pointer[guardHandler] // a new guard for each cold run
	next    atomic.Int64                 // index into as.Pool
	newCold func() (*guardHandler, error)
}

// setupCPU starts the authorization server's process and adds the hot and
// cold routes of the CPU runs to mux.
func (b *bench) setupCPU(ctx context.Context, mux *http.ServeMux, next http.Handler) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	c := &b.cpu
	c.child = exec.CommandContext(ctx, exe, "-delay", b.cfg.delay.String(), "-tokens", fmt.Sprint(b.cfg.coldTokens), "-warmups", fmt.Sprint(b.cfg.conc))
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
	line, err := bufio.NewReaderSize(out, 1<<20).ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reading from the authorization server's process: %w", err)
	}
	if err := json.Unmarshal(line, &c.as); err != nil || len(c.as.Pool) == 0 {
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

// runCPU alternates hot and cold runs against the API whose authorization
// server is in the child process, rounds times each, and returns both.
// Each cold run gets a new guard and opens its connections first, as in
// coldInterleave.
func (b *bench) runCPU(ctx context.Context, rounds int) (hot, cold loadResult) {
	c := &b.cpu
	hotPick := func(*rand.Rand) string { return c.as.Hot }
	coldPick := func(*rand.Rand) string {
		if i := c.next.Add(1) - 1; i < int64(len(c.as.Pool)) {
			return c.as.Pool[i]
		}
		return ""
	}
	merge := func(into *loadResult, r loadResult) {
		into.perRound = append(into.perRound, r.rps())
		into.reqs += r.reqs
		into.errs += r.errs
		into.elapsed += r.elapsed
		into.cpu += r.cpu
		into.lat = append(into.lat, r.lat...)
		into.ranOut = into.ranOut || r.ranOut
	}
	b.get(ctx, "/cpu/hot", c.as.Hot)
	for round := range rounds {
		for _, which := range [][]int{{0, 1}, {1, 0}}[round%2] {
			if which == 0 {
				runtime.GC()
				merge(&hot, b.load(ctx, "/cpu/hot", b.cfg.conc, hotPick))
				continue
			}
			gh, err := c.newCold()
			if err != nil {
				cold.errs++
				continue
			}
			c.cold.Swap(gh).tr.CloseIdleConnections()
			b.get(ctx, "/cpu/cold", c.as.Warmups[0])
			var wg sync.WaitGroup
			for _, t := range c.as.Warmups {
				wg.Go(func() { b.get(ctx, "/cpu/cold", t) })
			}
			wg.Wait()
			c.next.Store(0)
			runtime.GC()
			r := b.load(ctx, "/cpu/cold", b.cfg.conc, coldPick)
			r.ranOut = c.next.Load() >= int64(len(c.as.Pool))
			merge(&cold, r)
		}
	}
	return hot, cold
}

// reportCPU writes the CPU runs' table and returns their target.
func reportCPU(r *strings.Builder, hot, cold loadResult, pool int) target {
	fmt.Fprintf(r, "\n## API CPU per request, the authorization server in another process\n\n")
	fmt.Fprintf(r, "| run | req/s | p50 | p99 | API and load generator CPU per req | non-200 |\n|---|---:|---:|---:|---:|---:|\n")
	for _, row := range []struct {
		name string
		res  loadResult
	}{{"tokenguard, hot token", hot}, {"tokenguard, cold tokens", cold}} {
		fmt.Fprintf(r, "| %s | %.0f | %s | %s | %s | %d |\n", row.name, row.res.rps(), fmtDur(percentile(row.res.lat, 0.50)),
			fmtDur(percentile(row.res.lat, 0.99)), fmtDur(row.res.cpuPerReq()), row.res.errs)
	}
	extra := cold.cpuPerReq() - hot.cpuPerReq()
	fmt.Fprintf(r, "\nA cold request costs the API %s of CPU more than a hot one (the load generator's share is the same for both).\n", fmtDur(extra))
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
