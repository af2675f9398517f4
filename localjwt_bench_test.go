package tokenguard_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/introspect"
)

// The first request of a JWT never seen before, decided by introspection
// (the default) or locally (Config.LocalJWT, confirmed in the background).
// The development server runs in a child process (this test binary again,
// with benchASEnv set), so that the CPU reported is the API's own: the
// request, and in local mode the verification and the background
// confirmation, which the benchmark waits for before it reads the clock.
// Back to back, local mode's confirmations pile up behind the requests
// (and compete with them for the CPU); local-paced sends each request once
// the previous confirmation is done: the latency of a first request alone.
//
//	go test -run '^$' -bench FirstRequestJWT -benchtime 2000x -count 3 .

const benchASEnv = "TOKENGUARD_BENCH_JWT_AS" // the number of JWTs to mint

func init() {
	if n := os.Getenv(benchASEnv); n != "" {
		os.Exit(serveBenchAS(n))
	}
}

// serveBenchAS is the child: a development server issuing JWTs, its
// issuer, key file and project on the first line of stdout, then n JWTs,
// one a line; it stops when stdin closes.
func serveBenchAS(n string) int {
	count, err := strconv.Atoi(n)
	if err != nil {
		return 2
	}
	srv, err := devserver.Start(devserver.WithJWTAccessTokens())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.Close()
	project := srv.CreateProject("bench")
	app, _ := srv.CreateAPIApp(project.ID)
	user, _ := srv.CreateServiceUser("bot", devserver.Grant{ProjectID: project.ID, Roles: []string{"reader"}})
	dir, err := os.MkdirTemp("", "tokenguard-bench-")
	if err != nil {
		return 1
	}
	defer os.RemoveAll(dir)
	keyFile := filepath.Join(dir, "api-key.json")
	if err := os.WriteFile(keyFile, app.KeyJSON, 0o600); err != nil {
		return 1
	}
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(w, "%s %s %s\n", srv.Issuer(), keyFile, project.ID)
	for range count {
		tok, err := srv.MintToken(user.UserID, devserver.TokenOptions{ProjectIDs: []string{project.ID}, JWT: true})
		if err != nil {
			return 1
		}
		fmt.Fprintln(w, tok)
	}
	w.Flush()
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// benchAS starts the child with n JWTs and returns its issuer, key file,
// project and tokens.
func benchAS(b *testing.B, n int) (issuer, keyFile, project string, tokens []string) {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), benchASEnv+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	if !sc.Scan() {
		b.Fatal("the authorization server child said nothing")
	}
	head := strings.Fields(sc.Text())
	for sc.Scan() {
		tokens = append(tokens, sc.Text())
		if len(tokens) == n {
			break
		}
	}
	if len(head) != 3 || len(tokens) != n {
		b.Fatalf("child: %q and %d tokens, want 3 fields and %d", head, len(tokens), n)
	}
	return head[0], head[1], head[2], tokens
}

// countingTransport counts the introspections that completed.
type countingTransport struct {
	base http.RoundTripper
	done atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if r.URL.Path == devserver.IntrospectPath {
		c.done.Add(1)
	}
	return resp, err
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkFirstRequestJWT(b *testing.B) {
	for _, mode := range []struct {
		name         string
		local, paced bool // paced: each request after the previous one's confirmation
	}{{"introspection", false, false}, {"local", true, false}, {"local-paced", true, true}} {
		b.Run(mode.name, func(b *testing.B) {
			const warm = 16
			issuer, keyFile, project, tokens := benchAS(b, b.N+warm)
			tr := &countingTransport{base: introspect.NewTransport()}
			reader := sdkmetric.NewManualReader()
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
			g, err := tokenguard.New(context.Background(), tokenguard.Config{Issuer: issuer, KeyFile: keyFile, ProjectID: project,
				LocalJWT: mode.local, HTTPClient: &http.Client{Transport: tr},
				IntrospectOptions: []introspect.Option{introspect.WithMeterProvider(mp)}}, discardLogs())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = g.Close() })
			h := g.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			serve := func(tok string) {
				req := httptest.NewRequest(http.MethodGet, "/", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("GET = %d %s", rec.Code, rec.Header().Get("WWW-Authenticate"))
				}
			}
			// settled counts the finished introspections: with LocalJWT, the
			// confirmations, including those that failed without a round
			// trip (the in-flight limit) and the unconfirmed ones.
			settled := func() (all, failed int64) {
				if !mode.local {
					return tr.done.Load(), 0
				}
				var rm metricdata.ResourceMetrics
				_ = reader.Collect(context.Background(), &rm)
				for _, sm := range rm.ScopeMetrics {
					for _, m := range sm.Metrics {
						if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "tokenguard.jwt.confirmations" {
							for _, p := range sum.DataPoints {
								all += p.Value
								if v, _ := p.Attributes.Value("result"); v.AsString() == "failed" {
									failed += p.Value
								}
							}
						}
					}
				}
				return all, failed
			}
			settle := func(want int64) {
				for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
					if n, _ := settled(); n >= want {
						return
					} else if time.Now().After(deadline) {
						b.Fatalf("%d introspections finished, want %d", n, want)
					}
				}
			}
			for _, tok := range tokens[:warm] { // connections, assertion, keys
				serve(tok)
			}
			settle(warm)
			lat := make([]time.Duration, 0, b.N)
			cpu0 := cpuNow()
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				serve(tokens[warm+i])
				lat = append(lat, time.Since(start))
				if mode.paced { // the confirmation's round trip, counted cheaply
					b.StopTimer()
					for tr.done.Load() < int64(warm+i+1) {
						time.Sleep(50 * time.Microsecond)
					}
					b.StartTimer()
				}
			}
			b.StopTimer()
			settle(int64(warm + b.N)) // the confirmations' CPU counts too
			cpu := cpuNow() - cpu0
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			if !mode.paced { // paced, the waits between requests cost CPU too
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
			}
			if _, failed := settled(); mode.local {
				b.ReportMetric(float64(failed)/float64(b.N), "unconfirmed/op")
			}
		})
	}
}
