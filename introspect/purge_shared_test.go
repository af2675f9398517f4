package introspect_test

import (
	"context"
	"testing"

	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/introspect"
)

// pausingShared is a shared cache whose next Lookup, once it has read the
// entry, waits for release: a replica descheduled (GC, CPU) between reading
// the shared cache and using what it read.
type pausingShared struct {
	*memShared
	read, release chan struct{}
}

func (s *pausingShared) Lookup(ctx context.Context, token string) (introspect.SharedEntry, bool, error) {
	e, ok, err := s.memShared.Lookup(ctx, token)
	if s.read != nil {
		close(s.read)
		<-s.release
		s.read = nil
	}
	return e, ok, err
}

// TestPurgeDropsSharedAnswersInTheAir: an answer read from the shared cache
// before a Purge, and stored after it, is not cached: Purge keeps answers in
// the air from being cached, those of the shared cache too (rediscache's
// listener purges after losing its subscription, for the invalidations it
// may have missed meanwhile).
func TestPurgeDropsSharedAnswersInTheAir(t *testing.T) {
	t.Parallel()
	mem := &memShared{m: map[string]introspect.SharedEntry{}}
	as, a := newClient(t, introspect.WithSharedCache(mem))
	keyJSON, _ := as.NewApp(project)
	sh := &pausingShared{memShared: mem, read: make(chan struct{}), release: make(chan struct{})}
	b := clientFor(t, as, keyJSON, introspect.WithSharedCache(sh))
	ctx := context.Background()
	tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
	if _, err := a.Introspect(ctx, tok); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := b.Introspect(ctx, tok); done <- err }()
	<-sh.read // B has read alice's entry
	b.Purge()
	close(sh.release)
	if err := <-done; err != nil {
		t.Fatalf("the request in the air: %v (it may use what it read)", err)
	}
	if _, ok := b.Cached(ctx, tok); ok {
		t.Error("an answer read from the shared cache before the purge was cached after it")
	}
}
