package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

type result struct {
	code           int
	stdout, stderr string
}

func runArgs(args ...string) result {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// TestBenchRuns keeps the load benchmark working: a tiny run that must
// produce every section and row. It judges no speed: the targets are for
// full runs on an otherwise idle machine (see BENCHMARKS.md).
func TestBenchRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers and drives load for a few seconds")
	}
	r := runArgs("-duration", "100ms", "-rounds", "1", "-tokens", "20", "-entries", "2000", "-concurrency", "4", "-cold-tokens", "3000", "-cold-concurrency", "8")
	if r.code != exitOK {
		t.Fatalf("bench: %+v", r)
	}
	for _, want := range []string{
		"## Load over loopback HTTP", "tokenguard, hot token", "ZITADEL SDK style", "go-cache style",
		"| process CPU per req |", "Noise floor (A/A: the public route against itself",
		"a hit of the go-cache style baseline adds",
		"20 tokens uniform", "Zipf(1.1)", "Stampede", "## In process", "heap per cached entry", "## Targets",
		"exactly one introspection per distinct token, 64 workers | 20 for 20 tokens | met",
		"stampede: 1 introspection per new token (baseline pays 32) | 1.0 vs",
		"every load request answered 200 | 0 non-200 | met",
		"## Cold tokens", "| tokenguard, cold, HTTP, 8 connections |", "| SDK style, cold, HTTP, 8 connections |",
		"| tokenguard, cold, TLS (HTTP/2 offered), 8 connections |", "| tokenguard, cold, TLS (HTTP/1.1 only), 8 connections |",
		"| same on http.DefaultTransport, TLS (HTTP/1.1 only), 8 connections |",
		"cold tokens, HTTP, 8 connections: >= 3 x per-request introspection",
		"cold tokens, TLS, 8 connections, HTTP/2 offered: <= 1 TLS handshake per 1,000 requests",
		"cold tokens, TLS, 8 connections, HTTP/1.1 only: <= 1 TLS handshake per 1,000 requests",
		"## API CPU per request, the authorization server in another process", "| tokenguard, cold tokens |",
		"cold tokens: <= 150.0 us of API CPU per request above a hot one",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("bench output lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, args := range [][]string{{"-rounds", "0"}, {"-cold-tokens", "0"}, {"-cold-concurrency", "-1"}, {"extra"}} {
		if r := runArgs(args...); r.code != exitUsage {
			t.Errorf("bench %v: %+v, want exit status %d", args, r, exitUsage)
		}
	}
	if r := runArgs("-rounds", "0"); r.code != exitUsage {
		t.Errorf("bench -rounds 0: %+v", r)
	}
}
