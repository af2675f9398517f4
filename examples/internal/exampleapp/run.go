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
		dev, err := startDev(stdout)
		if err != nil {
			return err
		}
		defer dev.close()
		cfg.Issuer, cfg.KeyFile, cfg.ProjectID = dev.srv.Issuer(), dev.keyFile, dev.project.ID
		ready = dev.announce(stdout)
	}
	guard, err := NewGuard(ctx, cfg, middleware.WithLogger(Logger(stderr)))
	if err != nil {
		return err
	}
	return Serve(ctx, cfg.Addr, newRouter(guard.Middleware), ready)
}

// dev is the development setup: a server, a project with an API app whose
// key file is on disk, and two service users.
type dev struct {
	srv     *devserver.Server
	project devserver.Project
	keyFile string
	dir     string
	admin   string // token of a user with roles reader and admin
	reader  string // token of a user with role reader
}

func startDev(stdout io.Writer) (_ *dev, err error) {
	srv, err := devserver.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the development server: %w", err)
	}
	d := &dev{srv: srv, project: srv.CreateProject("tokenguard example")}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	app, err := srv.CreateAPIApp(d.project.ID)
	if err != nil {
		return nil, err
	}
	if d.dir, err = os.MkdirTemp("", "tokenguard-example-"); err != nil {
		return nil, err
	}
	d.keyFile = filepath.Join(d.dir, "api-key.json")
	if err := os.WriteFile(d.keyFile, app.KeyJSON, 0o600); err != nil {
		return nil, err
	}
	admin, err := srv.CreateServiceUser("admin-bot", devserver.Grant{ProjectID: d.project.ID, Roles: []string{"reader", "admin"}})
	if err != nil {
		return nil, err
	}
	reader, err := srv.CreateServiceUser("reader-bot", devserver.Grant{ProjectID: d.project.ID, Roles: []string{"reader"}})
	if err != nil {
		return nil, err
	}
	opts := devserver.TokenOptions{ProjectIDs: []string{d.project.ID}}
	if d.admin, err = srv.MintToken(admin.UserID, opts); err != nil {
		return nil, err
	}
	if d.reader, err = srv.MintToken(reader.UserID, opts); err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "No ISSUER set: started the development authorization server at %s\n", srv.Issuer())
	fmt.Fprintf(stdout, "  project %s, API key file %s\n", d.project.ID, d.keyFile)
	fmt.Fprintf(stdout, "  (set ISSUER, KEY_FILE and PROJECT_ID to use ZITADEL instead)\n")
	return d, nil
}

func (d *dev) announce(stdout io.Writer) func(addr string) {
	return func(addr string) {
		base := "http://" + addr
		var b strings.Builder // one write, so the banner is never interleaved
		fmt.Fprintf(&b, "API listening on %s\n\nTry it:\n", base)
		fmt.Fprintf(&b, "  curl -i %s/ping\n", base)
		fmt.Fprintf(&b, "  curl -i %s/api/me\n", base)
		fmt.Fprintf(&b, "  curl -i -H 'Authorization: Bearer %s' %s/api/me\n", d.admin, base)
		fmt.Fprintf(&b, "  curl -i -H 'Authorization: Bearer %s' %s/api/admin\n", d.admin, base)
		fmt.Fprintf(&b, "  curl -i -H 'Authorization: Bearer %s' %s/api/admin\n", d.reader, base)
		fmt.Fprintf(&b, "(the last token has role reader only: 403)\n")
		_, _ = io.WriteString(stdout, b.String())
	}
}

func (d *dev) close() {
	d.srv.Close()
	if d.dir != "" {
		os.RemoveAll(d.dir)
	}
}
