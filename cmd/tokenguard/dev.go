package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tokenguard/tokenguard/devserver"
)

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tokenguard dev", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9000", "listen address")
	out := fs.String("out", "tokenguard-dev", "directory for the key files")
	jwtTokens := fs.Bool("jwt", false, "issue JWT access tokens instead of opaque ones")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fail(exitUsage, "dev takes no arguments, got %q", fs.Args())
	}
	opts := []devserver.Option{devserver.WithAddr(*addr)}
	if *jwtTokens {
		opts = append(opts, devserver.WithJWTAccessTokens())
	}
	srv, err := devserver.Start(opts...)
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	defer srv.Close()

	project := srv.CreateProject("tokenguard dev")
	api, err := srv.CreateAPIApp(project.ID)
	if err != nil {
		return err
	}
	admin, err := srv.CreateServiceUser("admin-bot", devserver.Grant{ProjectID: project.ID, Roles: []string{"admin", "reader"}})
	if err != nil {
		return err
	}
	reader, err := srv.CreateServiceUser("reader-bot", devserver.Grant{ProjectID: project.ID, Roles: []string{"reader"}})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return fail(exitConfig, "creating %s: %v", *out, err)
	}
	files := map[string][]byte{"api-key.json": api.KeyJSON, "admin-bot.json": admin.KeyJSON, "reader-bot.json": reader.KeyJSON}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(*out, name), data, 0o600); err != nil {
			return fail(exitConfig, "writing key file: %v", err)
		}
	}
	key := func(name string) string { return shellQuote(filepath.Join(*out, name)) }
	iss, pid := srv.Issuer(), project.ID
	var b strings.Builder
	fmt.Fprintf(&b, "Development authorization server (ZITADEL-like) running.\n\n")
	fmt.Fprintf(&b, "Issuer:     %s\n", iss)
	fmt.Fprintf(&b, "Project ID: %s\n", pid)
	fmt.Fprintf(&b, "API app:    %s  key %s\n", api.ClientID, key("api-key.json"))
	fmt.Fprintf(&b, "Users:      admin-bot (roles admin, reader)  key %s\n", key("admin-bot.json"))
	fmt.Fprintf(&b, "            reader-bot (role reader)          key %s\n\n", key("reader-bot.json"))
	fmt.Fprintf(&b, "Run the example API against it:\n  ISSUER=%s KEY_FILE=%s PROJECT_ID=%s go run ./examples/nethttp\n\n", iss, key("api-key.json"), pid)
	fmt.Fprintf(&b, "Get a token as a service user (the jwt-bearer grant with the project audience scope):\n")
	fmt.Fprintf(&b, "  TOKEN=$(go run ./cmd/tokenguard token -issuer %s -key-file %s -project-id %s)\n\n", iss, key("admin-bot.json"), pid)
	fmt.Fprintf(&b, "Call the API with it:\n  curl -i -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8080/api/admin\n\n")
	fmt.Fprintf(&b, "Check a token as the API would:\n  go run ./cmd/tokenguard inspect -issuer %s -key-file %s -project-id %s \"$TOKEN\"\n\n", iss, key("api-key.json"), pid)
	fmt.Fprintf(&b, "Press Ctrl+C to stop.\n")
	_, _ = io.WriteString(stdout, b.String())
	<-ctx.Done()
	return nil
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
