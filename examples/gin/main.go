// Command gin is an API protected by tokenguard with gin.
//
// With no configuration it starts an in-process development authorization
// server and prints ready-to-run curl commands:
//
//	go run ./examples/gin
//
// Against ZITADEL: It is its own
// module so that gin stays out of the library's go.mod.
//
//	ISSUER=https://my-instance.zitadel.cloud KEY_FILE=api-key.json PROJECT_ID=123 go run ./examples/gin
//
// Routes: GET /ping (public), GET /api/ping, GET /api/me (any valid token for
// the project), GET /api/admin (project role admin), GET /api/events (a
// Server-Sent Events stream that ends when the token expires or is
// invalidated), and GET /metrics:
// tokenguard's OpenTelemetry metrics in Prometheus format.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/tokenguard/tokenguard/examples/internal/exampleapp"
	"github.com/tokenguard/tokenguard/middleware"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "gin:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	metrics, shutdown, err := installMetrics()
	if err != nil {
		return err
	}
	defer shutdown(context.WithoutCancel(ctx))
	return exampleapp.Run(ctx, "gin", args, getenv, stdout, stderr, func(mw *middleware.Middleware) http.Handler {
		return newRouter(mw, metrics)
	})
}

// installMetrics makes OTel's Prometheus exporter the global meter provider,
// which tokenguard's instruments use by default, and returns the /metrics
// handler.
func installMetrics() (http.Handler, func(context.Context) error, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	otel.SetMeterProvider(mp)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), mp.Shutdown, nil
}

// protect adapts the framework-neutral middleware to gin: authenticate the
// request, then serve it with the context that carries the claims, or write
// the error and abort.
func protect(mw *middleware.Middleware, reqs ...middleware.Requirement) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, err := mw.Authenticate(c.Request, reqs...)
		if err != nil {
			mw.WriteError(c.Writer, c.Request, err)
			c.Abort()
			return
		}
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}

// newRouter returns the API: one public route and three protected ones, and
// the Prometheus metrics on /metrics.
func newRouter(mw *middleware.Middleware, metrics http.Handler) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	r.GET("/ping", ping)
	r.GET("/metrics", gin.WrapH(metrics))
	// Each route authenticates once, with its own requirements.
	api := r.Group("/api")
	api.GET("/ping", protect(mw), ping)
	api.GET("/me", protect(mw), func(c *gin.Context) {
		claims, _ := middleware.ClaimsFromContext(c.Request.Context())
		c.JSON(http.StatusOK, exampleapp.MeFrom(claims))
	})
	api.GET("/admin", protect(mw, middleware.Role("admin")), func(c *gin.Context) {
		claims, _ := middleware.ClaimsFromContext(c.Request.Context())
		c.JSON(http.StatusOK, gin.H{"message": "hello, admin", "sub": claims.Subject})
	})
	api.GET("/events", protect(mw), watch(mw), gin.WrapF(exampleapp.Events))
	return r
}

// watch, after protect, cancels the request's context when its token
// expires or is invalidated: for streams, which must end then.
func watch(mw *middleware.Middleware) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := mw.Watch(c.Request.Context())
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}

func ping(c *gin.Context) { c.String(http.StatusOK, "pong") }
