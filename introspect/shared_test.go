package introspect_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/introspect"
)

func TestInvalidateSubject(t *testing.T) {
	t.Parallel()
	as, c := newClient(t)
	alice := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
	bob := as.Mint(fakeas.Token{Subject: "bob", Audience: []string{project}})
	for _, tok := range []string{alice, bob} {
		if _, err := c.Introspect(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	as.Revoke(alice) // e.g. the user was locked
	c.InvalidateSubject("alice")
	if _, err := c.Introspect(context.Background(), alice); !errors.Is(err, introspect.ErrInactive) {
		t.Errorf("alice after InvalidateSubject: err = %v, want ErrInactive at once", err)
	}
	calls := as.Calls()
	if _, err := c.Introspect(context.Background(), bob); err != nil || as.Calls() != calls {
		t.Errorf("bob after alice's invalidation: err %v, %d calls; want a cache hit", err, as.Calls()-calls)
	}
	fresh := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
	_, _ = c.Introspect(context.Background(), fresh)
	calls = as.Calls()
	if _, err := c.Introspect(context.Background(), fresh); err != nil || as.Calls() != calls {
		t.Errorf("a token of alice's introspected after the invalidation: err %v, %d calls; want a cache hit", err, as.Calls()-calls)
	}
}

// memShared is an in-memory SharedCache: the protocol's test double.
type memShared struct {
	mu      sync.Mutex
	m       map[string]introspect.SharedEntry
	fail    bool
	lookups int
}

func (s *memShared) Lookup(_ context.Context, token string) (introspect.SharedEntry, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups++
	if s.fail {
		return introspect.SharedEntry{}, false, errors.New("shared cache down")
	}
	e, ok := s.m[token]
	return e, ok, nil
}

func (s *memShared) Store(_ context.Context, token string, e introspect.SharedEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("shared cache down")
	}
	s.m[token] = e
	return nil
}

func TestSharedCacheBetweenReplicas(t *testing.T) {
	t.Parallel()
	shared := &memShared{m: map[string]introspect.SharedEntry{}}
	as, a := newClient(t, introspect.WithSharedCache(shared))
	keyJSON, _ := as.NewApp(project)
	b := clientFor(t, as, keyJSON, introspect.WithSharedCache(shared))

	tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
	if _, err := a.Introspect(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	calls := as.Calls()
	r, err := b.Introspect(context.Background(), tok)
	if err != nil || r.Subject != "alice" || as.Calls() != calls {
		t.Errorf("replica B: %v, %v after %d introspections; want A's answer from the shared cache", r, err, as.Calls()-calls)
	}
	if _, err := a.Introspect(context.Background(), "junk"); !errors.Is(err, introspect.ErrInactive) {
		t.Fatal(err)
	}
	calls = as.Calls()
	if _, err := b.Introspect(context.Background(), "junk"); !errors.Is(err, introspect.ErrInactive) || as.Calls() != calls {
		t.Errorf("inactive answer not shared: err %v, %d calls", err, as.Calls()-calls)
	}

	// An invalidation on B refuses shared entries filled before it.
	other := as.Mint(fakeas.Token{Subject: "bob", Audience: []string{project}})
	_, _ = a.Introspect(context.Background(), other)
	as.Revoke(other)
	b.InvalidateSubject("bob")
	if _, err := b.Introspect(context.Background(), other); !errors.Is(err, introspect.ErrInactive) {
		t.Errorf("B after InvalidateSubject(bob): err = %v, want ErrInactive, not A's shared answer", err)
	}

	// The shared cache failing changes nothing for callers.
	shared.mu.Lock()
	shared.fail = true
	shared.mu.Unlock()
	fresh := as.Mint(fakeas.Token{Subject: "carol", Audience: []string{project}})
	if _, err := b.Introspect(context.Background(), fresh); err != nil {
		t.Errorf("with the shared cache down: err = %v, want an answer from the server", err)
	}
}

func TestCachedNeverAsksTheServer(t *testing.T) {
	t.Parallel()
	as, c := newClient(t)
	tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
	if _, ok := c.Cached(context.Background(), tok); ok || as.Calls() != 0 {
		t.Fatalf("Cached() before any introspection: ok = %v, %d calls", ok, as.Calls())
	}
	_, _ = c.Introspect(context.Background(), tok)
	_, _ = c.Introspect(context.Background(), "junk")
	calls := as.Calls()
	if r, ok := c.Cached(context.Background(), tok); !ok || r.Subject != "alice" {
		t.Errorf("Cached(active) = %v, %v", r, ok)
	}
	if r, ok := c.Cached(context.Background(), "junk"); !ok || r.Active {
		t.Errorf("Cached(inactive) = %v, %v; want an inactive result", r, ok)
	}
	if _, ok := c.Cached(context.Background(), "never-seen"); ok {
		t.Errorf("Cached(unknown) = true")
	}
	if as.Calls() != calls {
		t.Errorf("Cached made %d introspections, want none", as.Calls()-calls)
	}
}

// TestCachedAt checks whose clock judges freshness: the caller's reading for
// a Client on the system clock, the Client's own clock once WithClock is set.
func TestCachedAt(t *testing.T) {
	t.Parallel()
	as, c := newClient(t, introspect.WithMaxTTL(time.Minute))
	tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}, Expiry: time.Now().Add(time.Hour)})
	if _, err := c.Introspect(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.CachedAt(context.Background(), tok, time.Now()); !ok {
		t.Error("CachedAt(now) missed a fresh entry")
	}
	if _, ok := c.CachedAt(context.Background(), tok, time.Now().Add(2*time.Minute)); ok {
		t.Error("CachedAt(now + 2 min) hit an entry fresh for 1 min: the caller's time was ignored")
	}

	clk := newClock()
	as2, c2 := newClient(t, introspect.WithClock(clk.Now), introspect.WithMaxTTL(time.Minute))
	tok2 := as2.Mint(fakeas.Token{Subject: "bob", Audience: []string{project}, Expiry: clk.Now().Add(time.Hour)})
	if _, err := c2.Introspect(context.Background(), tok2); err != nil {
		t.Fatal(err)
	}
	if _, ok := c2.CachedAt(context.Background(), tok2, clk.Now().Add(2*time.Minute)); !ok {
		t.Error("with WithClock, CachedAt judged by the caller's time instead of the Client's clock")
	}
	clk.Advance(2 * time.Minute)
	if _, ok := c2.CachedAt(context.Background(), tok2, time.Time{}); ok {
		t.Error("with WithClock, CachedAt hit an entry the Client's clock says has expired")
	}
}

// TestCacheKeyIsSHA256OfToken pins the key that SECURITY.md and the docs
// state, which replicas exchange: SHA-256 of the token, never the token.
func TestCacheKeyIsSHA256OfToken(t *testing.T) {
	t.Parallel()
	_, c := newClient(t)
	for _, tok := range []string{"", "a", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"} {
		if got, want := c.CacheKey(tok), sha256.Sum256([]byte(tok)); got != want {
			t.Errorf("CacheKey(%q) = %x, want SHA-256 %x", tok, got, want)
		}
	}
}
