// Command tokenguard helps wire an API to ZITADEL (or any RFC 7662 server).
//
//	tokenguard dev     [-addr 127.0.0.1:9000] [-out DIR]
//	tokenguard token   -issuer URL -key-file service-user.json -project-id ID [-internal-url URL] [-scope S]... [-json]
//	tokenguard inspect -issuer URL -key-file api-app.json -project-id ID [-internal-url URL] [-role R]... [-json] [TOKEN]
//	tokenguard doctor  -issuer URL -key-file api-app.json -project-id ID [-internal-url URL] [TOKEN]
//
// dev runs the development authorization server with one project, one API
// application and two service users (admin-bot with roles admin and reader,
// reader-bot with role reader), writes their key files to DIR and prints
// commands to copy. token signs a JWT with a service user's key and trades it
// for an access token with the project audience scope. inspect introspects a
// token (an argument, or standard input) as the API would and explains the
// verdict. doctor checks the API's configuration against the server and
// prints one line per check (see tokenguard.Check). The project's load
// benchmark is not part of this command: it is internal/cmd/bench in the
// repository (see BENCHMARKS.md).
//
// Exit status: 0 success (for inspect: the API would accept the token; for
// doctor: every check passed); 1 the API would refuse the token; 2 bad
// usage; 3 a configuration problem (key file, issuer URL, rejected
// credentials, clock skew); 4 the authorization server could not be reached
// or failed. Errors are one line on standard error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit statuses.
const (
	exitOK          = 0
	exitRefused     = 1
	exitUsage       = 2
	exitConfig      = 3
	exitUnavailable = 4
)

const usage = `usage:
  tokenguard dev     [-addr 127.0.0.1:9000] [-out DIR]
  tokenguard token   -issuer URL -key-file service-user.json -project-id ID [-internal-url URL] [-scope S]... [-json]
  tokenguard inspect -issuer URL -key-file api-app.json -project-id ID [-internal-url URL] [-role R]... [-json] [TOKEN]
  tokenguard doctor  -issuer URL -key-file api-app.json -project-id ID [-internal-url URL] [TOKEN]
Run 'tokenguard COMMAND -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitError carries an exit status with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func fail(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "dev":
		err = runDev(ctx, args[1:], stdout, stderr)
	case "token":
		err = runToken(ctx, args[1:], stdout, stderr)
	case "inspect":
		err = runInspect(ctx, args[1:], stdin, stdout, stderr)
	case "doctor":
		err = runDoctor(ctx, args[1:], stdin, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "tokenguard: unknown command %q\n%s", args[0], usage)
		return exitUsage
	}
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		ee = &exitError{code: exitConfig, err: err}
	}
	if msg := oneLine(ee.Error()); msg != "" {
		fmt.Fprintln(stderr, "tokenguard:", msg)
	}
	return ee.code
}

// oneLine folds a message onto one line and drops a repeated command prefix.
func oneLine(msg string) string {
	msg = strings.TrimPrefix(msg, "tokenguard: ")
	return strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", ": ")), " ")
}
