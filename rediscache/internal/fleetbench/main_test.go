package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestFleetSmoke runs the benchmark with tiny numbers so that it keeps
// compiling and working; it checks that the run completes and reports sane
// values, not speed.
func TestFleetSmoke(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not found; .ci/run installs it")
		}
		t.Skip("redis-server not installed (apt-get install redis-server)")
	}
	c := config{replicas: 2, tokens: 50, requests: 300, conc: 4, trials: 5, poll: time.Millisecond, giveUp: 5 * time.Second}
	res, err := fleet(t.Context(), c)
	if err != nil {
		t.Fatalf("fleet(%+v) err = %v", c, err)
	}
	if res.requests != c.requests || res.non200 != 0 {
		t.Errorf("load: %d requests, %d non-200; want %d, 0", res.requests, res.non200, c.requests)
	}
	// Every distinct token costs at least one introspection across the
	// fleet, and at most one per replica.
	if res.distinct < 1 || res.introspections < int64(res.distinct) || res.introspections > int64(res.distinct*c.replicas) {
		t.Errorf("load: %d introspections for %d distinct tokens, want between 1 and %d per token", res.introspections, res.distinct, c.replicas)
	}
	if want := c.trials * (c.replicas - 1); len(res.propagation) != want || res.notRefused != 0 {
		t.Errorf("invalidation: %d samples refused, %d not refused; want %d, 0", len(res.propagation), res.notRefused, want)
	}
	for _, d := range res.propagation {
		if d <= 0 || d > c.giveUp {
			t.Errorf("invalidation: propagation %v, want in (0, %v]", d, c.giveUp)
		}
	}
	var out bytes.Buffer
	report(&out, c, res)
	for _, s := range []string{"per distinct token across the fleet", "| p50 | p90 | p99 | max |", "targets met"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, out.String())
		}
	}
}

// TestBadArguments checks that bad flags are a usage error, not a run.
func TestBadArguments(t *testing.T) {
	for _, args := range [][]string{{"-replicas", "1"}, {"-tokens", "0"}, {"-poll", "0s"}, {"extra"}, {"-nope"}} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != exitUsage {
			t.Errorf("run(%q) = %d, want %d", args, code, exitUsage)
		}
	}
}
