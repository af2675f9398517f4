// Package exampleapp holds what the net/http and gin examples share: their
// configuration (env vars with equivalent flags), the /api/me body, and
// serving until interrupted. The routes themselves live in each example.
package exampleapp

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/middleware"
)

// DefaultAddr is where the examples listen unless ADDR or -addr says otherwise.
const DefaultAddr = "127.0.0.1:8080"

// Config is an example's configuration.
type Config struct {
	Issuer    string // ISSUER, -issuer
	KeyFile   string // KEY_FILE, -key-file: the API application's key JSON
	ProjectID string // PROJECT_ID, -project-id
	Addr      string // ADDR, -addr
	// InternalURL (INTERNAL_URL, -internal-url) reaches the issuer at an
	// in-cluster address; see tokenguard.Config.InternalURL.
	InternalURL string
	// InsecureAllowHTTP (INSECURE_ALLOW_HTTP=1, -insecure-allow-http)
	// allows plain http beyond loopback, as an in-cluster INTERNAL_URL
	// without TLS needs.
	InsecureAllowHTTP bool
	// ResourceURL (RESOURCE_URL, -resource-url) is the API's public base
	// URL, the resource of its RFC 9728 metadata. Default: http://ADDR as
	// bound.
	ResourceURL string
	// LocalJWT (LOCAL_JWT=true, -local-jwt) verifies JWT access tokens
	// locally and confirms them by introspection in the background; see
	// tokenguard.Config.LocalJWT. The development server then issues JWT
	// access tokens.
	LocalJWT bool
}

// ParseConfig reads the env vars ISSUER, KEY_FILE, PROJECT_ID and ADDR (and
// INTERNAL_URL, INSECURE_ALLOW_HTTP, RESOURCE_URL), then the flags of the
// same names (-issuer, -key-file, ...), which win. ADDR defaults to
// [DefaultAddr].
func ParseConfig(name string, args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	return ParseConfigAt(name, DefaultAddr, args, getenv, stderr)
}

// ParseConfigAt is [ParseConfig] with another default address.
func ParseConfigAt(name, defaultAddr string, args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	c := Config{Issuer: getenv("ISSUER"), KeyFile: getenv("KEY_FILE"), ProjectID: getenv("PROJECT_ID"), Addr: getenv("ADDR"),
		InternalURL: getenv("INTERNAL_URL"), InsecureAllowHTTP: getenv("INSECURE_ALLOW_HTTP") == "1", ResourceURL: getenv("RESOURCE_URL")}
	if v := getenv("LOCAL_JWT"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("LOCAL_JWT=%q: want true or false", v)
		}
		c.LocalJWT = on
	}
	if c.Addr == "" {
		c.Addr = defaultAddr
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Issuer, "issuer", c.Issuer, "authorization server issuer URL (env ISSUER)")
	fs.StringVar(&c.KeyFile, "key-file", c.KeyFile, "API application key JSON file (env KEY_FILE)")
	fs.StringVar(&c.ProjectID, "project-id", c.ProjectID, "ZITADEL project ID of this API (env PROJECT_ID)")
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address (env ADDR)")
	fs.StringVar(&c.InternalURL, "internal-url", c.InternalURL, "reach the issuer at this in-cluster address, with Host set to the issuer's (env INTERNAL_URL)")
	fs.BoolVar(&c.InsecureAllowHTTP, "insecure-allow-http", c.InsecureAllowHTTP, "allow plain http beyond loopback (env INSECURE_ALLOW_HTTP=1)")
	fs.BoolVar(&c.LocalJWT, "local-jwt", c.LocalJWT, "verify JWT access tokens locally, confirmed by introspection in the background (env LOCAL_JWT=true)")
	fs.StringVar(&c.ResourceURL, "resource-url", c.ResourceURL, "the API's public base URL, for /.well-known/oauth-protected-resource (env RESOURCE_URL; default http://ADDR)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.Issuer != "" {
		var missing []string
		if c.KeyFile == "" {
			missing = append(missing, "KEY_FILE (-key-file)")
		}
		if c.ProjectID == "" {
			missing = append(missing, "PROJECT_ID (-project-id)")
		}
		if len(missing) > 0 {
			return Config{}, fmt.Errorf("with ISSUER set, also set %s", strings.Join(missing, " and "))
		}
	}
	return c, nil
}

// NewGuard builds the guard for c. Close it when done (it holds the key
// cache of c.LocalJWT).
func NewGuard(ctx context.Context, c Config, opts ...middleware.Option) (*tokenguard.Guard, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return tokenguard.New(ctx, tokenguard.Config{Issuer: c.Issuer, KeyFile: c.KeyFile, ProjectID: c.ProjectID,
		InternalURL: c.InternalURL, InsecureAllowHTTP: c.InsecureAllowHTTP, LocalJWT: c.LocalJWT}, opts...)
}

// Me is the JSON body of GET /api/me.
type Me struct {
	Subject  string   `json:"sub"`
	ClientID string   `json:"client_id"`
	Username string   `json:"username,omitempty"`
	OrgID    string   `json:"org_id"`
	Roles    []string `json:"roles"`
	Scopes   []string `json:"scopes"`
	Expiry   int64    `json:"exp"`
}

// MeFrom builds the /api/me body from the request's claims.
func MeFrom(c *middleware.Claims) Me {
	scopes := c.Scopes()
	if scopes == nil {
		scopes = []string{}
	}
	return Me{Subject: c.Subject, ClientID: c.ClientID, Username: c.Username, OrgID: c.OrgID,
		Roles: c.Roles.Names(), Scopes: scopes, Expiry: c.Expiry.Unix()}
}

// Serve listens on addr and serves h until ctx is done, then shuts down
// gracefully. ready, if not nil, is called with the bound address.
func Serve(ctx context.Context, addr string, h http.Handler, ready func(addr string)) error {
	return ServeServer(ctx, addr, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, ready)
}

// ServeServer is [Serve] with a server of the caller's. When the shutdown
// starts, the contexts of requests under way are cancelled, so that
// streams (Server-Sent Events, server streams) end instead of holding the
// shutdown up.
func ServeServer(ctx context.Context, addr string, srv *http.Server, ready func(addr string)) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	base, stopStreams := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStreams()
	srv.BaseContext = func(net.Listener) context.Context { return base }
	srv.RegisterOnShutdown(stopStreams)
	if ready != nil {
		ready(l.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Logger is the examples' logger: text on stderr.
func Logger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// Announce returns a ready callback for [Serve] that prints where the API
// listens.
func Announce(w io.Writer) func(addr string) {
	return func(addr string) { fmt.Fprintf(w, "API listening on http://%s\n", addr) }
}

// DiscardLogs is a middleware option for tests: no logging.
func DiscardLogs() middleware.Option { return middleware.WithLogger(slog.New(slog.DiscardHandler)) }
