package exampleapp

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/tokenguard/tokenguard/devserver"
	"github.com/tokenguard/tokenguard/middleware"
)

// Run is an example program: it reads the configuration from args and
// getenv, starts the in-process development authorization server when no
// issuer is set, protects newRouter's handler and serves it until ctx is done.
func Run(ctx context.Context, name string, args []string, getenv func(string) string, stdout, stderr io.Writer,
	newRouter func(*middleware.Middleware) http.Handler) error {
	cfg, err := ParseConfig(name, args, getenv, stderr)
	if err != nil {
		return err
	}
	ready := Announce(stdout)
	if cfg.Issuer == "" {
		dev, err := StartDevFor(stdout, cfg)
		if err != nil {
			return err
		}
		defer dev.Close()
		dev.Configure(&cfg)
		ready = dev.announce(stdout)
	}
	guard, err := NewGuard(ctx, cfg, middleware.WithLogger(Logger(stderr)))
	if err != nil {
		return err
	}
	defer guard.Close()
	meta, err := NewMetadata(cfg) // GET /.well-known/oauth-protected-resource, public (metadata.go)
	if err != nil {
		return err
	}
	announce := ready
	ready = func(addr string) {
		if err := meta.Bind(addr); err != nil {
			fmt.Fprintf(stderr, "%s: no protected resource metadata: %v; set RESOURCE_URL\n", name, err)
		}
		announce(addr)
	}
	return Serve(ctx, cfg.Addr, meta.Wrap(newRouter(guard.Middleware)), ready)
}

// Dev is the development setup: a server, a project with an API app whose
// key file is on disk, and two service users with a token each.
type Dev struct {
	Server     *devserver.Server
	Project    devserver.Project
	KeyFile    string
	AdminUser  devserver.ServiceUser // roles reader and admin
	ReaderUser devserver.ServiceUser // role reader
	Admin      string                // a token of AdminUser
	Reader     string                // a token of ReaderUser
	dir        string
}

// StartDev starts the development authorization server with the example's
// project, API application and service users, and says so on stdout. Close
// it when done.
func StartDev(stdout io.Writer) (*Dev, error) { return StartDevFor(stdout, Config{}) }

// StartDevFor is [StartDev] for the configuration c: with c.LocalJWT, the
// server issues JWT access tokens, and the tokens it prints are JWTs.
func StartDevFor(stdout io.Writer, c Config) (_ *Dev, err error) {
	var sopts []devserver.Option
	if c.LocalJWT {
		sopts = append(sopts, devserver.WithJWTAccessTokens())
	}
	srv, err := devserver.Start(sopts...)
	if err != nil {
		return nil, fmt.Errorf("starting the development server: %w", err)
	}
	d := &Dev{Server: srv, Project: srv.CreateProject("tokenguard example")}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	app, err := srv.CreateAPIApp(d.Project.ID)
	if err != nil {
		return nil, err
	}
	if d.dir, err = os.MkdirTemp("", "tokenguard-example-"); err != nil {
		return nil, err
	}
	d.KeyFile = filepath.Join(d.dir, "api-key.json")
	if err := os.WriteFile(d.KeyFile, app.KeyJSON, 0o600); err != nil {
		return nil, err
	}
	if d.AdminUser, err = srv.CreateServiceUser("admin-bot", devserver.Grant{ProjectID: d.Project.ID, Roles: []string{"reader", "admin"}}); err != nil {
		return nil, err
	}
	if d.ReaderUser, err = srv.CreateServiceUser("reader-bot", devserver.Grant{ProjectID: d.Project.ID, Roles: []string{"reader"}}); err != nil {
		return nil, err
	}
	opts := devserver.TokenOptions{ProjectIDs: []string{d.Project.ID}, JWT: c.LocalJWT}
	if d.Admin, err = srv.MintToken(d.AdminUser.UserID, opts); err != nil {
		return nil, err
	}
	if d.Reader, err = srv.MintToken(d.ReaderUser.UserID, opts); err != nil {
		return nil, err
	}
	kind := "opaque"
	if c.LocalJWT {
		kind = "JWT"
	}
	fmt.Fprintf(stdout, "No ISSUER set: started the development authorization server at %s (%s access tokens)\n", srv.Issuer(), kind)
	fmt.Fprintf(stdout, "  project %s, API key file %s\n", d.Project.ID, d.KeyFile)
	fmt.Fprintf(stdout, "  (set ISSUER, KEY_FILE and PROJECT_ID to use ZITADEL instead)\n")
	return d, nil
}

// Configure points c at the development server.
func (d *Dev) Configure(c *Config) {
	c.Issuer, c.KeyFile, c.ProjectID = d.Server.Issuer(), d.KeyFile, d.Project.ID
}

func (d *Dev) announce(stdout io.Writer) func(addr string) {
	return func(addr string) {
		base := "http://" + addr
		var b strings.Builder // one write, so the banner is never interleaved
		fmt.Fprintf(&b, "API listening on %s\n\nTry it:\n", base)
		fmt.Fprintf(&b, "  curl -i %s/ping\n", base)
		fmt.Fprintf(&b, "  curl -i %s/api/me\n", base)
		fmt.Fprintf(&b, "  curl -i -H 'Authorization: Bearer %s' %s/api/me\n", d.Admin, base)
		fmt.Fprintf(&b, "  curl -i -H 'Authorization: Bearer %s' %s/api/admin\n", d.Admin, base)
		fmt.Fprintf(&b, "  curl -i -H 'Authorization: Bearer %s' %s/api/admin\n", d.Reader, base)
		fmt.Fprintf(&b, "(the last token has role reader only: 403)\n")
		fmt.Fprintf(&b, "  curl -N -H 'Authorization: Bearer %s' %s/api/events\n", d.Reader, base)
		fmt.Fprintf(&b, "(Server-Sent Events, a tick every 100 ms, until the token expires or is invalidated)\n")
		_, _ = io.WriteString(stdout, b.String())
	}
}

// Close stops the server and removes the key file.
func (d *Dev) Close() {
	d.Server.Close()
	if d.dir != "" {
		os.RemoveAll(d.dir)
	}
}
