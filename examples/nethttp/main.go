// Command nethttp is an API protected by tokenguard with net/http.
//
// With no configuration it starts an in-process development authorization
// server and prints ready-to-run curl commands:
//
//	go run ./examples/nethttp
//
// Against ZITADEL:
//
//	ISSUER=https://my-instance.zitadel.cloud KEY_FILE=api-key.json PROJECT_ID=123 go run ./examples/nethttp
//
// Routes: GET /ping (public), GET /api/ping, GET /api/me (any valid token for
// the project), GET /api/admin (project role admin), GET /api/events (a
// Server-Sent Events stream, one "data: tick" every 100 ms, that ends when
// the token expires or is invalidated).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/tokenguard/tokenguard/examples/internal/exampleapp"
	"github.com/tokenguard/tokenguard/middleware"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "nethttp:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return exampleapp.Run(ctx, "nethttp", args, getenv, stdout, stderr, newRouter)
}

// newRouter returns the API: one public route and three protected ones.
func newRouter(mw *middleware.Middleware) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", ping)
	mux.Handle("GET /api/ping", mw.Wrap(http.HandlerFunc(ping)))
	mux.Handle("GET /api/me", mw.Wrap(http.HandlerFunc(me)))
	mux.Handle("GET /api/admin", mw.Require(middleware.Role("admin"))(http.HandlerFunc(admin)))
	mux.Handle("GET /api/events", mw.Stream()(http.HandlerFunc(exampleapp.Events))) // ends with the token
	return mux
}

func ping(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "pong")
}

func me(w http.ResponseWriter, r *http.Request) {
	claims, _ := middleware.ClaimsFromContext(r.Context())
	writeJSON(w, exampleapp.MeFrom(claims))
}

func admin(w http.ResponseWriter, r *http.Request) {
	claims, _ := middleware.ClaimsFromContext(r.Context())
	writeJSON(w, map[string]string{"message": "hello, admin", "sub": claims.Subject})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
