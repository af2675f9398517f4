package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
)

// runDoctor runs tokenguard.Check and prints one line per check. The exit
// status is the worst finding: 4 the server could not be reached, 3 a
// configuration problem, 1 the token would be refused, 0 all good.
func runDoctor(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tokenguard doctor", flag.ContinueOnError)
	sf := addServerFlags(fs)
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the server")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if err := sf.required(); err != nil {
		return err
	}
	var token string
	switch fs.NArg() {
	case 0:
	case 1:
		token = strings.TrimSpace(strings.TrimPrefix(fs.Arg(0), "Bearer "))
		if token == "-" {
			var err error
			if token, err = readToken(nil, stdin); err != nil {
				return err
			}
		}
	default:
		return fail(exitUsage, "doctor takes at most one token, got %d arguments", fs.NArg())
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	cfg := sf.config()
	results := tokenguard.Check(ctx, cfg, token)

	var b strings.Builder
	code := exitOK
	var failed []string
	for _, r := range results {
		b.WriteString(r.String())
		b.WriteByte('\n')
		if c := doctorCode(r); c != exitOK {
			failed = append(failed, r.Name)
			code = worse(code, c)
		}
	}
	_, _ = io.WriteString(stdout, b.String())
	if code == exitOK {
		return nil
	}
	return fail(code, "%d of %d checks failed: %s", len(failed), len(results), strings.Join(failed, ", "))
}

// doctorCode is the exit status one result calls for.
func doctorCode(r tokenguard.CheckResult) int {
	var e *middleware.Error
	switch {
	case r.OK(), errors.Is(r.Err, tokenguard.ErrCheckSkipped):
		return exitOK
	case errors.Is(r.Err, introspect.ErrUnavailable), errors.Is(r.Err, middleware.ErrUnavailable), errors.Is(r.Err, context.DeadlineExceeded):
		return exitUnavailable
	case r.Name == "token" && errors.As(r.Err, &e) && e.StatusCode < http.StatusInternalServerError:
		return exitRefused
	}
	return exitConfig
}

// worse orders exit statuses: unreachable over configuration over refused.
func worse(a, b int) int {
	rank := map[int]int{exitOK: 0, exitRefused: 1, exitConfig: 2, exitUnavailable: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}
