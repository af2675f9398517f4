package grpcguard_test

import (
	"context"
	"errors"
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
// two in one loop, so that both see the same machine, and reports
// protected/unprotected throughput as the ratio metric (1 = free).
func BenchmarkUnary(b *testing.B) {
	w := newWorld(b)
	conn := serve(b, mustGuard(b, w.guard(b).Middleware, policy...))
	tok := w.token(b, w.reader, devserver.TokenOptions{})
	ctx := withAuth(context.Background(), "Bearer "+tok)
	if _, err := unary(ctx, conn, mUnary); err != nil { // warm the cache
		b.Fatal(err)
	}
	plain := context.Background()
	b.Run("unprotected", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := unary(plain, conn, mPublic); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("protected", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := unary(ctx, conn, mUnary); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("paired", func(b *testing.B) {
		var pub, prot time.Duration
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
				pub += timed(mPublic)
				prot += timed(mUnary)
			} else {
				prot += timed(mUnary)
				pub += timed(mPublic)
			}
		}
		if prot > 0 {
			b.ReportMetric(float64(pub)/float64(prot), "ratio")
		}
	})
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
