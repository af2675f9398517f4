package introspect_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/introspect"
)

// inFlight starts Introspect(tok) on a server slowed by delay and returns
// once the server has the request, with a channel for the outcome.
func inFlight(t *testing.T, as *fakeas.Server, c *introspect.Client, tok string, delay time.Duration) <-chan error {
	t.Helper()
	as.SetDelay(delay)
	calls := as.Calls()
	done := make(chan error, 1)
	go func() {
		_, err := c.Introspect(context.Background(), tok)
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for as.Calls() == calls {
		if time.Now().After(deadline) {
			t.Fatal("the introspection never reached the server")
		}
		time.Sleep(time.Millisecond)
	}
	return done
}

// The attacker's timeline: introspection starts at t0, the user is locked
// and invalidated at t1, the slow "active" answer arrives at t2 > t1. The
// answer may serve the request that started before t1; it must not be
// cached for anyone after.
func TestInvalidationDuringIntrospectionWins(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		invalidate func(c *introspect.Client, tok string)
	}{
		{"subject", func(c *introspect.Client, _ string) { c.InvalidateSubject("alice") }},
		{"token", func(c *introspect.Client, tok string) { c.Invalidate(tok) }},
		{"token ID", func(c *introspect.Client, _ string) { c.InvalidateTokenID("jti-alice") }},
		{"cache key, as a replica reports it", func(c *introspect.Client, tok string) {
			c.InvalidateCacheKeyAt(c.CacheKey(tok), time.Now())
		}},
		{"subject, as a replica reports it", func(c *introspect.Client, _ string) {
			c.InvalidateSubjectAt("alice", time.Now())
		}},
		{"purge", func(c *introspect.Client, _ string) { c.Purge() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			as, c := newClient(t)
			tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}, Extra: map[string]any{"jti": "jti-alice"}})
			done := inFlight(t, as, c, tok, 300*time.Millisecond)
			tc.invalidate(c, tok)
			if err := <-done; err != nil {
				t.Fatalf("the request that started before the invalidation: err = %v, want its answer", err)
			}
			as.SetDelay(0)
			calls := as.Calls()
			if _, err := c.Introspect(context.Background(), tok); err != nil {
				t.Fatal(err)
			}
			if got := as.Calls() - calls; got != 1 {
				t.Errorf("after an invalidation during the flight: %d introspections, want 1 (the flight's answer must not be cached)", got)
			}
			calls = as.Calls()
			if _, err := c.Introspect(context.Background(), tok); err != nil || as.Calls() != calls {
				t.Errorf("the answer introspected after the invalidation: err %v, %d calls; want it cached", err, as.Calls()-calls)
			}
		})
	}
}

// A request that starts after an invalidation never joins a flight that
// started before it.
func TestRequestAfterInvalidationDoesNotJoinOlderFlight(t *testing.T) {
	t.Parallel()
	as, c := newClient(t)
	tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
	first := inFlight(t, as, c, tok, 400*time.Millisecond)
	c.InvalidateSubject("alice")
	calls := as.Calls()
	second := make(chan error, 1)
	go func() {
		_, err := c.Introspect(context.Background(), tok)
		second <- err
	}()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if got := as.Calls() - calls; got != 1 {
		t.Errorf("a request after the invalidation made %d introspections, want its own 1, not a share of the older flight", got)
	}
}

func TestInvalidateTokenIDSparesOtherTokens(t *testing.T) {
	t.Parallel()
	as, c := newClient(t)
	one := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}, Extra: map[string]any{"jti": "one"}})
	two := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}, Extra: map[string]any{"jti": "two"}})
	for _, tok := range []string{one, two} {
		if _, err := c.Introspect(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	as.Revoke(one)
	c.InvalidateTokenID("one")
	if _, err := c.Introspect(context.Background(), one); !errors.Is(err, introspect.ErrInactive) {
		t.Errorf("the invalidated token: err = %v, want ErrInactive at once", err)
	}
	calls := as.Calls()
	if _, err := c.Introspect(context.Background(), two); err != nil || as.Calls() != calls {
		t.Errorf("the user's other token: err %v, %d calls; want a cache hit", err, as.Calls()-calls)
	}
}

func TestPurgeDropsEverything(t *testing.T) {
	t.Parallel()
	as, c := newClient(t)
	toks := []string{
		as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}}),
		as.Mint(fakeas.Token{Subject: "bob", Audience: []string{project}}),
		"junk",
	}
	for _, tok := range toks {
		_, _ = c.Introspect(context.Background(), tok)
	}
	c.Purge()
	calls := as.Calls()
	for _, tok := range toks {
		_, _ = c.Introspect(context.Background(), tok)
	}
	if got := as.Calls() - calls; got != int64(len(toks)) {
		t.Errorf("after Purge: %d introspections for %d tokens, want every one asked again", got, len(toks))
	}
}

func TestWatch(t *testing.T) {
	t.Parallel()
	as, c := newClient(t)
	tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}, Extra: map[string]any{"jti": "jti-1"}})
	r, err := c.Introspect(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	for _, tc := range []struct {
		name       string
		invalidate func()
		want       bool
	}{
		{"Invalidate", func() { c.Invalidate(tok) }, true},
		{"InvalidateCacheKeyAt", func() { c.InvalidateCacheKeyAt(c.CacheKey(tok), time.Now()) }, true},
		{"InvalidateSubject", func() { c.InvalidateSubject("alice") }, true},
		{"InvalidateSubjectAt", func() { c.InvalidateSubjectAt("alice", time.Now()) }, true},
		{"InvalidateTokenID", func() { c.InvalidateTokenID("jti-1") }, true},
		{"Purge", c.Purge, true},
		{"another subject", func() { c.InvalidateSubject("bob") }, false},
		{"another token", func() { c.Invalidate("other") }, false},
		{"another token ID", func() { c.InvalidateTokenID("jti-2") }, false},
	} {
		ch, stop := c.Watch(tok, r)
		tc.invalidate()
		if got := closed(ch); got != tc.want {
			t.Errorf("%s: watcher told = %v, want %v", tc.name, got, tc.want)
		}
		stop()
		stop() // stop twice is harmless
	}

	// A stopped watcher is never told. (Each goroutine checks only after
	// all have stopped: an invalidation by another goroutine between one's
	// Watch and its stop rightly tells it.)
	var wg sync.WaitGroup
	chans := make([]<-chan struct{}, 50)
	for i := range chans {
		wg.Go(func() {
			ch, stop := c.Watch(tok, r)
			stop()
			chans[i] = ch
		})
	}
	wg.Wait()
	c.InvalidateSubject("alice")
	for _, ch := range chans {
		if closed(ch) {
			t.Fatal("a stopped watcher was told")
		}
	}
	// Watchers, stops and invalidations at once are safe (-race).
	for range 50 {
		wg.Go(func() {
			ch, stop := c.Watch(tok, r)
			c.InvalidateSubject("alice")
			stop()
			select { // told by this invalidation, or by another goroutine's that may still be closing it
			case <-ch:
			case <-time.After(5 * time.Second):
				t.Error("a watcher not yet stopped was not told of its subject's invalidation")
			}
		})
	}
	wg.Wait()
}

// A replica never serves a shared entry past its own rules, whatever its
// writer (forged, misconfigured, or with a clock ahead) says.
func TestSharedEntryCappedByOwnRules(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	for _, tc := range []struct {
		name            string
		filled, fresh   time.Duration // from now
		advance         time.Duration
		wantIntrospects int64
	}{
		{"fresh for a day, read within the max TTL", 0, day, 30 * time.Second, 0},
		{"fresh for a day, read past the max TTL", 0, day, 2 * time.Minute, 1},
		{"filled a little ahead (clock skew)", 2 * time.Second, day, 0, 0},
		{"filled a little ahead, read past the max TTL", 2 * time.Second, day, 2 * time.Minute, 1},
		{"filled far in the future", time.Hour, day, 0, 1},
		{"filled an hour ago, fresh for a day", -time.Hour, day, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			shared := &memShared{m: map[string]introspect.SharedEntry{}}
			as, c := newClient(t, introspect.WithSharedCache(shared), introspect.WithMaxTTL(time.Minute), introspect.WithClock(clk.Now))
			exp := clk.Now().Add(day)
			tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}, Expiry: exp})
			body := `{"active":true,"sub":"alice","aud":["` + project + `"],"exp":` + strconv.FormatInt(exp.Unix(), 10) + `}`
			now := clk.Now()
			shared.m[tok] = introspect.SharedEntry{Body: []byte(body), Filled: now.Add(tc.filled), Fresh: now.Add(tc.fresh), Expires: now.Add(tc.fresh)}
			clk.Advance(tc.advance)
			calls := as.Calls()
			if _, err := c.Introspect(context.Background(), tok); err != nil {
				t.Fatal(err)
			}
			if got := as.Calls() - calls; got != tc.wantIntrospects {
				t.Errorf("%d introspections, want %d (max TTL 1m)", got, tc.wantIntrospects)
			}
		})
	}
}

// An entry copied from the shared cache lives in the LRU no longer than
// this replica's own max TTL.
func TestSharedEntryCopiedWithOwnLifetime(t *testing.T) {
	t.Parallel()
	clk := newClock()
	shared := &memShared{m: map[string]introspect.SharedEntry{}}
	as, c := newClient(t, introspect.WithSharedCache(shared), introspect.WithMaxTTL(time.Minute), introspect.WithClock(clk.Now))
	exp := clk.Now().Add(time.Hour)
	tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}, Expiry: exp})
	body := `{"active":true,"sub":"alice","aud":["` + project + `"],"exp":` + strconv.FormatInt(exp.Unix(), 10) + `}`
	now := clk.Now()
	shared.m[tok] = introspect.SharedEntry{Body: []byte(body), Filled: now, Fresh: exp, Expires: exp}
	if _, err := c.Introspect(context.Background(), tok); err != nil || as.Calls() != 0 {
		t.Fatalf("first read: err %v, %d calls; want the shared answer", err, as.Calls())
	}
	delete(shared.m, tok)
	clk.Advance(61 * time.Second)
	if _, ok := c.Cached(context.Background(), tok); ok {
		t.Error("the LRU copy of a shared entry outlived this replica's max TTL")
	}
}

// A replica's report of an invalidation acts at the time it was made: a
// late or replayed report cannot refuse decisions made since, and a report
// no later than one already applied changes nothing.
func TestReportedInvalidationsActAtTheirTime(t *testing.T) {
	t.Parallel()
	as, c := newClient(t)
	tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}, Extra: map[string]any{"jti": "jti-a"}})
	r, err := c.Introspect(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-50 * time.Minute)
	for _, tc := range []struct {
		name   string
		report func(at time.Time)
	}{
		{"subject", func(at time.Time) { c.InvalidateSubjectAt("alice", at) }},
		{"token ID", func(at time.Time) { c.InvalidateTokenIDAt("jti-a", at) }},
		{"cache key", func(at time.Time) { c.InvalidateCacheKeyAt(c.CacheKey(tok), at) }},
	} {
		ch, stop := c.Watch(tok, r)
		for range 10 { // an old message, replayed
			tc.report(old)
		}
		calls := as.Calls()
		if _, err := c.Introspect(context.Background(), tok); err != nil || as.Calls() != calls {
			t.Errorf("%s: after 10 reports of an invalidation made before the decision: err %v, %d introspections; want the decision kept", tc.name, err, as.Calls()-calls)
		}
		select {
		case <-ch:
			t.Errorf("%s: a report older than the decision ended its watcher", tc.name)
		default:
		}
		stop()
	}

	// A report made after the decision was filled refuses it, once.
	at := time.Now()
	c.InvalidateSubjectAt("alice", at)
	calls := as.Calls()
	r, err = c.Introspect(context.Background(), tok)
	if err != nil || as.Calls() != calls+1 {
		t.Fatalf("after a report made since the decision: err %v, %d introspections, want 1", err, as.Calls()-calls)
	}
	ch, stop := c.Watch(tok, r)
	defer stop()
	c.InvalidateSubjectAt("alice", at) // the same report again
	calls = as.Calls()
	if _, err := c.Introspect(context.Background(), tok); err != nil || as.Calls() != calls {
		t.Errorf("the same report replayed: err %v, %d introspections; want no change", err, as.Calls()-calls)
	}
	select {
	case <-ch:
		t.Error("the same report replayed ended a watcher of the newer decision")
	default:
	}
}

// BenchmarkInvalidations: each invalidation costs a map update, not a scan
// of every record (records are pruned at most once a second).
func BenchmarkInvalidations(b *testing.B) {
	as := fakeas.Start()
	defer as.Close()
	keyJSON, _ := as.NewApp(project)
	c := clientFor(b, as, keyJSON)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.InvalidateTokenID(strconv.Itoa(i))
		i++
	}
}
