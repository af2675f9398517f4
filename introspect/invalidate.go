package introspect

import (
	"context"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenguard/tokenguard/internal/telemetry"
)

// Invalidation and its ordering with introspections in the air.
//
// Every invalidation (a token, a subject, a token ID, a purge) takes the next
// number of one counter, the generation, and records it. A request to the
// server (or to the shared cache) remembers the generation it started under,
// and its answer carries it into the cache. An answer is dead, and never
// served or stored, when an invalidation that concerns it has a higher
// generation: the invalidation happened while the request was in the air,
// or after the answer was cached. Generations are this process's own order
// of events, so a slow answer loses to an invalidation whatever the clocks
// say, and a request sent after this process learned of an invalidation is
// never refused for it, whatever the other replica's clock said.
//
// Answers taken from the shared cache were filled by another replica, whose
// generations mean nothing here: they are dead when they were filled at or
// before the time of an invalidation (the invalidating replica's clock).
//
// The singleflight key carries the generation, so a request that starts
// after an invalidation never joins a flight that started before it.

// revocation is one recorded invalidation.
type revocation struct {
	gen uint64 // generation of the invalidation
	at  int64  // when it was made (Unix ns), on the invalidating replica's clock
}

// stamp says where an answer comes from, for the revocation checks.
type stamp struct {
	filled int64  // when the request was sent (Unix ns); the writer's Filled for shared entries
	gen    uint64 // generation the request started under; 0 for shared entries
}

// deadBy reports whether the invalidation r concerns an answer stamped s.
func (s stamp) deadBy(r revocation) bool {
	if s.gen == 0 { // from the shared cache: only the clocks can tell
		return s.filled <= r.at
	}
	return s.gen < r.gen
}

type revKind uint8

const (
	bySubject revKind = iota + 1
	byTokenID
)

type revKey struct {
	kind revKind
	id   string
}

// revocations holds the invalidations that can still concern a cached or
// in-flight answer, and the watchers of [Client.Watch].
type revocations struct {
	gen     atomic.Uint64 // the latest generation handed out; 1 before any
	hasByID atomic.Bool   // byID is not empty: the hit path's only cost

	mu     sync.RWMutex // guards the fields below
	byID   map[revKey]revocation
	keys   map[[sha256.Size]byte]revocation // tombstones of invalidated tokens
	purged uint64                           // generation of the last Purge

	watchMu  sync.Mutex // guards watchers and watching
	watchers map[watchKey]map[*watcher]struct{}
	watching int
}

// dead reports whether an answer about r, stamped s, was overtaken by a
// subject or token ID invalidation. It costs one atomic load while nothing
// was invalidated.
func (c *Client) dead(r *Response, s stamp) bool {
	if !c.rev.hasByID.Load() {
		return false
	}
	return c.rev.deadByID(r, s)
}

func (rv *revocations) deadByID(r *Response, s stamp) bool {
	rv.mu.RLock()
	defer rv.mu.RUnlock()
	if x, ok := rv.byID[revKey{bySubject, r.Subject}]; ok && r.Subject != "" && s.deadBy(x) {
		return true
	}
	x, ok := rv.byID[revKey{byTokenID, r.JWTID}]
	return ok && r.JWTID != "" && s.deadBy(x)
}

// deadForStore reports whether an answer about the token with this key,
// stamped s, must not be cached: any invalidation since it was asked for.
func (c *Client) deadForStore(key [sha256.Size]byte, r *Response, s stamp) bool {
	if c.dead(r, s) {
		return true
	}
	c.rev.mu.RLock()
	defer c.rev.mu.RUnlock()
	if s.gen != 0 && s.gen < c.rev.purged {
		return true
	}
	x, ok := c.rev.keys[key]
	return ok && s.deadBy(x)
}

// record notes an invalidation made at at under the next generation, through
// set. Records are kept as long as an answer they concern can live: max TTL
// plus the stale-if-error window and the timeout.
func (c *Client) record(at time.Time, set func(revocation)) {
	rv := &c.rev
	now := c.cfg.now().UnixNano()
	keep := int64(c.cfg.maxTTL + c.cfg.staleIfErr + c.cfg.timeout)
	rv.mu.Lock()
	x := revocation{gen: rv.gen.Add(1), at: at.UnixNano()}
	if rv.byID == nil {
		rv.byID = map[revKey]revocation{}
		rv.keys = map[[sha256.Size]byte]revocation{}
	}
	set(x)
	for k, old := range rv.byID {
		if now-old.at > keep && old.gen != x.gen {
			delete(rv.byID, k)
		}
	}
	for k, old := range rv.keys {
		if now-old.at > keep && old.gen != x.gen {
			delete(rv.keys, k)
		}
	}
	rv.hasByID.Store(len(rv.byID) > 0)
	rv.mu.Unlock()
}

func later(old, x revocation, ok bool) revocation {
	if ok && old.at > x.at {
		x.at = old.at // keep the latest time; the generation is new
	}
	return x
}

// Invalidate drops the cached answer for token, if any, so that the next
// [Client.Introspect] asks the server again; an answer for it that is in
// the air is not cached. With a [SharedInvalidator] it reaches every
// replica. It is safe for concurrent use, as are all Invalidate methods.
func (c *Client) Invalidate(token string) {
	key := c.key(token)
	at := c.cfg.now()
	c.InvalidateCacheKeyAt(key, at)
	if si, ok := c.cfg.shared.(SharedInvalidator); ok {
		_ = si.InvalidateShared(context.Background(), key, token, at)
	}
}

// InvalidateCacheKey is [Client.InvalidateCacheKeyAt] at the present time.
func (c *Client) InvalidateCacheKey(key [sha256.Size]byte) { c.InvalidateCacheKeyAt(key, c.cfg.now()) }

// InvalidateCacheKeyAt drops the cached result with that key (see
// [Client.CacheKey]) in this process only, as another replica reports an
// invalidation made at the given time: answers in the air are not cached,
// and a shared entry filled at or before at is refused.
func (c *Client) InvalidateCacheKeyAt(key [sha256.Size]byte, at time.Time) {
	c.metrics.Invalidated(context.Background(), telemetry.Token)
	c.record(at, func(x revocation) {
		old, ok := c.rev.keys[key]
		c.rev.keys[key] = later(old, x, ok)
	})
	if c.cache != nil { // after the record: a store that raced it re-checks
		c.cache.Remove(key)
		if c.neg != nil {
			c.neg.Remove(key)
		}
	}
	c.notify(watchKey{key: key})
}

// InvalidateSubject makes every result cached for the subject (a user)
// count as stale, and keeps answers about the subject's tokens that are in
// the air from being cached, so that the user's next requests are
// introspected again: call it when a user is locked, deactivated or
// removed. With a [SharedInvalidator] it reaches every replica. It is kept
// for the longest time an entry can live (max TTL plus the stale-if-error
// window and the timeout), then forgotten.
func (c *Client) InvalidateSubject(subject string) {
	at := c.cfg.now()
	c.InvalidateSubjectAt(subject, at)
	if si, ok := c.cfg.shared.(SharedInvalidator); ok {
		_ = si.InvalidateSubjectShared(context.Background(), subject, at)
	}
}

// InvalidateSubjectAt is [Client.InvalidateSubject] in this process only,
// for an invalidation made at the given time, as another replica reports
// it.
func (c *Client) InvalidateSubjectAt(subject string, at time.Time) {
	c.metrics.Invalidated(context.Background(), telemetry.Subject)
	c.record(at, func(x revocation) {
		k := revKey{bySubject, subject}
		old, ok := c.rev.byID[k]
		c.rev.byID[k] = later(old, x, ok)
	})
	c.notify(watchKey{kind: bySubject, id: subject})
}

// InvalidateTokenID makes every result cached for the token whose jti claim
// is jti count as stale, as [Client.InvalidateSubject] does for a user: call
// it when one token is revoked and you know its ID but not the token, as
// ZITADEL's token-removed events say. With a [SharedInvalidator] it reaches
// every replica.
func (c *Client) InvalidateTokenID(jti string) {
	at := c.cfg.now()
	c.InvalidateTokenIDAt(jti, at)
	if si, ok := c.cfg.shared.(SharedInvalidator); ok {
		_ = si.InvalidateTokenIDShared(context.Background(), jti, at)
	}
}

// InvalidateTokenIDAt is [Client.InvalidateTokenID] in this process only,
// for an invalidation made at the given time, as another replica reports
// it.
func (c *Client) InvalidateTokenIDAt(jti string, at time.Time) {
	c.metrics.Invalidated(context.Background(), telemetry.Token)
	c.record(at, func(x revocation) {
		k := revKey{byTokenID, jti}
		old, ok := c.rev.byID[k]
		c.rev.byID[k] = later(old, x, ok)
	})
	c.notify(watchKey{kind: byTokenID, id: jti})
}

// Purge drops every result cached in this process, and keeps answers that
// are in the air from being cached: a shared cache calls it when it may have
// missed invalidations (a lost subscription). Every watcher of
// [Client.Watch] is told.
func (c *Client) Purge() {
	c.record(c.cfg.now(), func(x revocation) { c.rev.purged = x.gen })
	if c.cache != nil {
		c.cache.Purge()
		if c.neg != nil {
			c.neg.Purge()
		}
	}
	c.notify(watchKey{})
}

// watchKey names what a watcher waits for: a cache key, a subject or a
// token ID; the zero watchKey (a purge) concerns every watcher.
type watchKey struct {
	kind revKind
	id   string
	key  [sha256.Size]byte
}

type watcher struct {
	ch   chan struct{}
	keys []watchKey
	once sync.Once
}

// Watch returns a channel that is closed once the decision for token, whose
// introspection result is r, is invalidated: by [Client.Invalidate] of the
// token or its cache key, [Client.InvalidateSubject] of r's subject,
// [Client.InvalidateTokenID] of r's jti, or [Client.Purge], in this process
// or as another replica reports it. stop releases the watcher; call it when
// the request ends. It does not watch expiry: the caller knows r's exp.
// Watching costs nothing on the hit path and a map update per call here.
func (c *Client) Watch(token string, r *Response) (invalidated <-chan struct{}, stop func()) {
	w := &watcher{ch: make(chan struct{}), keys: []watchKey{{key: c.key(token)}}}
	if r != nil && r.Subject != "" {
		w.keys = append(w.keys, watchKey{kind: bySubject, id: r.Subject})
	}
	if r != nil && r.JWTID != "" {
		w.keys = append(w.keys, watchKey{kind: byTokenID, id: r.JWTID})
	}
	rv := &c.rev
	rv.watchMu.Lock()
	if rv.watchers == nil {
		rv.watchers = map[watchKey]map[*watcher]struct{}{}
	}
	for _, k := range w.keys {
		set := rv.watchers[k]
		if set == nil {
			set = map[*watcher]struct{}{}
			rv.watchers[k] = set
		}
		set[w] = struct{}{}
	}
	rv.watching++
	rv.watchMu.Unlock()
	return w.ch, func() { c.unwatch(w) }
}

func (c *Client) unwatch(w *watcher) {
	rv := &c.rev
	rv.watchMu.Lock()
	defer rv.watchMu.Unlock()
	removed := false
	for _, k := range w.keys {
		if set, ok := rv.watchers[k]; ok {
			if _, ok := set[w]; ok {
				removed = true
				delete(set, w)
				if len(set) == 0 {
					delete(rv.watchers, k)
				}
			}
		}
	}
	if removed {
		rv.watching--
	}
}

// notify closes the channels of the watchers of k (of all, for a purge) and
// forgets them.
func (c *Client) notify(k watchKey) {
	rv := &c.rev
	rv.watchMu.Lock()
	if rv.watching == 0 {
		rv.watchMu.Unlock()
		return
	}
	var hit []*watcher
	if k == (watchKey{}) {
		for _, set := range rv.watchers {
			for w := range set {
				hit = append(hit, w)
			}
		}
	} else {
		for w := range rv.watchers[k] {
			hit = append(hit, w)
		}
	}
	rv.watchMu.Unlock()
	for _, w := range hit {
		c.unwatch(w)
		w.once.Do(func() { close(w.ch) })
	}
}
