// Command bench is tokenguard's load benchmark, a maintainer tool kept out
// of the user-facing CLI (it links testing, runtime/pprof, httptest and
// zitadel/oidc's resource server client):
//
//	go run ./internal/cmd/bench [-delay 2ms] [-duration 1.5s] [-rounds 12] [-concurrency 8] [-tokens 1000]
//	                            [-entries 100000] [-cold-tokens 20000] [-cold-concurrency 32] [-check] [-cpuprofile FILE]
//	                            [-cpuprofile-cold FILE]
//
// It measures tokenguard against per-request introspection and a go-cache
// style cache on loopback, hot and cold, over HTTP and over TLS to the
// authorization server, and prints a table of targets (see BENCHMARKS.md).
//
// Exit status: 0 success; 1 a target was missed (with -check); 2 bad usage;
// 3 the benchmark could not be set up.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit statuses.
const (
	exitOK     = 0
	exitMissed = 1
	exitUsage  = 2
	exitConfig = 3
)

func main() {
	if code, err := asOnlyMain(); err == nil { // the child process of the CPU runs
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
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

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := runBench(ctx, args, stdout, stderr)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		ee = &exitError{code: exitConfig, err: err}
	}
	if msg := strings.Join(strings.Fields(strings.ReplaceAll(ee.Error(), "\n", ": ")), " "); msg != "" {
		fmt.Fprintln(stderr, msg)
	}
	return ee.code
}

// parse parses args into fs and turns flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &exitError{code: exitOK, err: errors.New("")}
		}
		return &exitError{code: exitUsage, err: errors.New("")} // flag already printed the problem
	}
	return nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
