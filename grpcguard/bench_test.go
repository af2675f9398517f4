package grpcguard_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/middleware"
)

// BenchmarkUnary compares unary calls over loopback gRPC to a protected
// method with a hot (cached) token and to an unprotected (public) method of
// the same server, through the same interceptor. "paired" interleaves the
// two in one loop, so that both see the same machine, and reports the
// ratio of their median latencies, unprotected/protected: the throughput
// of the protected method relative to the unprotected one (1 = free);
// "paired-A/A" does the same for the unprotected method twice. Paired
// calls are sequential, so the check's few microseconds sit on the critical
// path of every call; "throughput" measures under load, as BENCHMARKS.md
// does for HTTP.
func BenchmarkUnary(b *testing.B) {
	w := newWorld(b)
	conn := serve(b, mustGuard(b, w.guard(b).Middleware, policy...))
	tok := w.token(b, w.reader, devserver.TokenOptions{})
	ctx := withAuth(context.Background(), "Bearer "+tok)
	if _, err := unary(ctx, conn, mBench); err != nil { // warm the cache
		b.Fatal(err)
	}
	plain := context.Background()
	b.Run("unprotected", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := unary(plain, conn, mBenchPublic); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("protected", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := unary(ctx, conn, mBench); err != nil {
				b.Fatal(err)
			}
		}
	})
	// paired reports the ratio of the median latencies of calls to a and
	// b, interleaved in one loop so that both see the same machine: b's
	// throughput relative to a's. Medians, so that a call descheduled by a
	// busy machine does not decide the ratio.
	paired := func(a, c string) func(b *testing.B) {
		return func(b *testing.B) {
			var as, cs []time.Duration
			timed := func(method string) time.Duration {
				t0 := time.Now()
				if _, err := unary(ctx, conn, method); err != nil { // same metadata both ways: same bytes on the wire
					b.Fatal(err)
				}
				return time.Since(t0)
			}
			odd := false
			for b.Loop() {
				if odd = !odd; odd { // alternate the order
					as = append(as, timed(a))
					cs = append(cs, timed(c))
				} else {
					cs = append(cs, timed(c))
					as = append(as, timed(a))
				}
			}
			if m := median(cs); m > 0 {
				b.ReportMetric(float64(median(as))/float64(m), "ratio")
			}
		}
	}
	b.Run("paired", paired(mBenchPublic, mBench))
	b.Run("paired-A/A", paired(mBenchPublic, mBenchPublic)) // the noise floor: 1 but for noise

	// throughput is the load benchmark's measure (BENCHMARKS.md): 8 callers
	// back to back on one connection, rounds of each method in alternating
	// order, and the median over rounds of b's req/s over a's.
	throughput := func(a, c string) func(b *testing.B) {
		return func(b *testing.B) {
			const callers, calls = 8, 50
			round := func(method string) time.Duration {
				var wg sync.WaitGroup
				t0 := time.Now()
				for range callers {
					wg.Go(func() {
						for range calls {
							if _, err := unary(ctx, conn, method); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				return time.Since(t0)
			}
			var ratios []float64
			odd := false
			for b.Loop() {
				var da, dc time.Duration
				if odd = !odd; odd {
					da, dc = round(a), round(c)
				} else {
					dc, da = round(c), round(a)
				}
				ratios = append(ratios, float64(da)/float64(dc))
			}
			slices.Sort(ratios)
			b.ReportMetric(ratios[len(ratios)/2], "ratio")
		}
	}
	b.Run("throughput", throughput(mBenchPublic, mBench))
	b.Run("throughput-A/A", throughput(mBenchPublic, mBenchPublic))
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// BenchmarkUnaryServerInterceptor is the interceptor alone, in process, with
// a hot token: what protection adds to each call.
func BenchmarkUnaryServerInterceptor(b *testing.B) {
	w := newWorld(b)
	intercept := mustGuard(b, w.guard(b).Middleware, policy...).UnaryServerInterceptor()
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+w.token(b, w.reader, devserver.TokenOptions{})))
	info := &grpc.UnaryServerInfo{FullMethod: mUnary}
	handler := func(ctx context.Context, _ any) (any, error) {
		if _, ok := middleware.ClaimsFromContext(ctx); !ok {
			return nil, errors.New("no claims")
		}
		return nil, nil
	}
	if _, err := intercept(ctx, nil, info, handler); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := intercept(ctx, nil, info, handler); err != nil {
			b.Fatal(err)
		}
	}
}
