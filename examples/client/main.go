// Command client is a service user calling a protected API: it signs a JWT
// with its key, trades it at the token endpoint (jwt-bearer grant, scope
// openid plus the project audience scope) for an access token, and calls the
// API with it.
//
// With no configuration it runs the whole flow in one process: the
// development authorization server, an API protected by tokenguard, and the
// client; it also shows what happens without the audience scope.
//
//	go run ./examples/client
//
// Against ZITADEL and a running API (for example go run ./examples/nethttp):
//
//	ISSUER=https://my-instance.zitadel.cloud KEY_FILE=service-user.json PROJECT_ID=123 API=http://127.0.0.1:8080 go run ./examples/client
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/middleware"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

type config struct{ issuer, keyFile, projectID, api string }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := config{issuer: getenv("ISSUER"), keyFile: getenv("KEY_FILE"), projectID: getenv("PROJECT_ID"), api: getenv("API")}
	if c.api == "" {
		c.api = "http://127.0.0.1:8080"
	}
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.issuer, "issuer", c.issuer, "authorization server issuer URL (env ISSUER)")
	fs.StringVar(&c.keyFile, "key-file", c.keyFile, "the service user's key JSON (env KEY_FILE)")
	fs.StringVar(&c.projectID, "project-id", c.projectID, "the API's project ID (env PROJECT_ID)")
	fs.StringVar(&c.api, "api", c.api, "base URL of the API (env API)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.issuer == "" {
		return runAllInOne(ctx, stdout)
	}
	if c.keyFile == "" || c.projectID == "" {
		return errors.New("with ISSUER set, also set KEY_FILE (-key-file) and PROJECT_ID (-project-id)")
	}
	key, err := clientauth.LoadKey(c.keyFile)
	if err != nil {
		return err
	}
	return callAPI(ctx, stdout, key, c.issuer, c.api, []string{c.projectID})
}

// callAPI is the seed flow: a token source for the service user, and an HTTP
// client that sends its token on every request.
func callAPI(ctx context.Context, stdout io.Writer, key *clientauth.Key, issuer, api string, projectIDs []string) error {
	ts := &clientauth.JWTBearer{Key: key, Issuer: issuer, ProjectIDs: projectIDs}
	fmt.Fprintf(stdout, "requesting a token with scope %q\n", ts.Scope())
	httpClient := ts.Client(ctx)
	for _, path := range []string{"/api/me", "/api/admin"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(api, "/")+path, nil)
		if err != nil {
			return err
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		fmt.Fprintf(stdout, "GET %s -> %s %s\n", path, resp.Status, strings.TrimSpace(string(body)))
		if h := resp.Header.Get("WWW-Authenticate"); h != "" {
			fmt.Fprintf(stdout, "  WWW-Authenticate: %s\n", h)
		}
	}
	return nil
}

// runAllInOne starts the development server and a protected API in this
// process, then calls the API as a service user with role reader: with the
// audience scope, and without it.
func runAllInOne(ctx context.Context, stdout io.Writer) error {
	srv, err := devserver.Start()
	if err != nil {
		return err
	}
	defer srv.Close()
	project := srv.CreateProject("tokenguard example")
	app, err := srv.CreateAPIApp(project.ID)
	if err != nil {
		return err
	}
	user, err := srv.CreateServiceUser("reader-bot", devserver.Grant{ProjectID: project.ID, Roles: []string{"reader"}})
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "tokenguard-client-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	keyFile := filepath.Join(dir, "api-key.json")
	if err := os.WriteFile(keyFile, app.KeyJSON, 0o600); err != nil {
		return err
	}
	gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	guard, err := tokenguard.New(gctx, tokenguard.Config{Issuer: srv.Issuer(), KeyFile: keyFile, ProjectID: project.ID})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /api/me", guard.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := middleware.ClaimsFromContext(r.Context())
		fmt.Fprintf(w, `{"sub":%q,"roles":%q}`, c.Subject, c.Roles.Names())
	})))
	mux.Handle("GET /api/admin", guard.Require(middleware.Role("admin"))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"message":"hello, admin"}`)
	})))
	api := httptest.NewServer(mux)
	defer api.Close()

	key, err := clientauth.ParseKey(user.KeyJSON)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "development server %s, project %s, API %s, service user %s (role reader)\n\n", srv.Issuer(), project.ID, api.URL, user.Username)
	fmt.Fprintf(stdout, "1. With the project audience scope:\n")
	if err := callAPI(ctx, stdout, key, srv.Issuer(), api.URL, []string{project.ID}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n2. Without it (the most common mistake):\n")
	return callAPI(ctx, stdout, key, srv.Issuer(), api.URL, nil)
}
