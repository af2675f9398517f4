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
// Every invalidation made in this process (a token, a subject, a token ID,
// a purge) takes the next number of one counter, the generation, and
// records it. A request to the server (or to the shared cache) remembers
// the generation it started under, and its answer carries it into the
// cache. An answer is dead, and never served or stored, when a local
// invalidation that concerns it has a higher generation: the invalidation
// happened while the request was in the air, or after the answer was
// cached. Generations are this process's own order of events, so a slow
// answer loses to a local invalidation whatever the clock says.
//
// An invalidation another replica reports (the ...At methods) carries the
// time it was made on that replica's clock: it kills answers filled (sent)
// at or before that time, and nothing filled after it, so a late or
// replayed report cannot refuse a decision made since. A report no later
// than one already recorded for the same token, subject or token ID
// changes nothing: replays are no-ops. Answers taken from the shared cache
// were filled by another replica, whose generations mean nothing here: the
// clocks alone judge them, against every invalidation.
//
// The singleflight key carries the generation, which every new
// invalidation advances, so a request that starts after an invalidation
// never joins a flight that started before it.

// revocation is what is recorded of the invalidations of one token,
// subject or token ID.
type revocation struct {
	gen      uint64 // generation of the latest local invalidation; 0 if none
	localAt  int64  // when it was made (Unix ns)
	remoteAt int64  // time of the latest reported invalidation (the reporter's clock); 0 if none
}

// latest is the time of the latest invalidation, local or reported.
func (r revocation) latest() int64 { return max(r.localAt, r.remoteAt) }

// stamp says where an answer comes from, for the revocation checks.
type stamp struct {
	filled int64  // when the request was sent (Unix ns); the writer's Filled for shared entries
	gen    uint64 // generation the request started under; 0 for shared entries
	asked  uint64 // generation the flight started under, shared entries too: for Purge
}

// deadBy reports whether the invalidations r concern an answer stamped s.
func (s stamp) deadBy(r revocation) bool {
	if s.gen == 0 { // from the shared cache: only the clocks can tell
		return s.filled <= r.latest()
	}
	return s.gen < r.gen || s.filled <= r.remoteAt
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
	pruned int64                            // when records were last pruned (Unix ns)

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
	if asked := max(s.gen, s.asked); asked != 0 && asked < c.rev.purged {
		return true
	}
	x, ok := c.rev.keys[key]
	return ok && s.deadBy(x)
}

// record notes an invalidation through merge, which gets the generation it
// would take and returns the record to keep and whether anything changed;
// a local invalidation always does, a reported one only when it is later
// than what is recorded. It returns the generation taken, or 0 when nothing
// changed. Records are kept as long as an answer they concern can live
// (max TTL plus the stale-if-error window and the timeout) and pruned at
// most once a second, so that a burst of invalidations costs each one a
// map update, not a scan.
func (c *Client) record(merge func(gen uint64) bool) uint64 {
	rv := &c.rev
	now := c.cfg.now().UnixNano()
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if rv.byID == nil {
		rv.byID = map[revKey]revocation{}
		rv.keys = map[[sha256.Size]byte]revocation{}
	}
	gen := rv.gen.Load() + 1
	if !merge(gen) {
		return 0
	}
	rv.gen.Store(gen) // under mu: generations are taken in order
	if now-rv.pruned >= int64(time.Second) {
		rv.pruned = now
		keep := int64(c.cfg.maxTTL + c.cfg.staleIfErr + c.cfg.timeout)
		for k, old := range rv.byID {
			if now-old.latest() > keep && old.gen != gen {
				delete(rv.byID, k)
			}
		}
		for k, old := range rv.keys {
			if now-old.latest() > keep && old.gen != gen {
				delete(rv.keys, k)
			}
		}
	}
	rv.hasByID.Store(len(rv.byID) > 0)
	return gen
}

// merged returns old with a local invalidation of generation gen at now,
// or one reported at at (remote), and whether that changed anything.
func merged(old revocation, gen uint64, now, at int64, remote bool) (revocation, bool) {
	if remote {
		if at <= old.remoteAt {
			return old, false // a replay, or older news
		}
		old.remoteAt = at
		return old, true
	}
	old.gen, old.localAt = gen, max(old.localAt, now)
	return old, true
}

func (c *Client) invalidateKey(key [sha256.Size]byte, at time.Time, remote bool) {
	now, t := c.cfg.now().UnixNano(), at.UnixNano()
	if c.record(func(gen uint64) bool {
		x, changed := merged(c.rev.keys[key], gen, now, t, remote)
		c.rev.keys[key] = x
		return changed
	}) == 0 {
		return
	}
	c.metrics.Invalidated(context.Background(), telemetry.Token)
	if c.cache != nil { // after the record: a store that raced it re-checks
		if e, ok := c.cache.Get(key); !remote || !ok || e.stamp.deadBy(revocation{remoteAt: t}) {
			c.cache.Remove(key)
		}
		if c.neg != nil {
			c.neg.Remove(key)
		}
	}
	c.notify(watchKey{key: key}, remote, t)
}

func (c *Client) invalidateID(k revKey, at time.Time, remote bool) {
	now, t := c.cfg.now().UnixNano(), at.UnixNano()
	if c.record(func(gen uint64) bool {
		x, changed := merged(c.rev.byID[k], gen, now, t, remote)
		c.rev.byID[k] = x
		return changed
	}) == 0 {
		return
	}
	kind := telemetry.Subject
	if k.kind == byTokenID {
		kind = telemetry.Token
	}
	c.metrics.Invalidated(context.Background(), kind)
	c.notify(watchKey{kind: k.kind, id: k.id}, remote, t)
}

// Invalidate drops the cached answer for token, if any, so that the next
// [Client.Introspect] asks the server again; an answer for it that is in
// the air is not cached. With a [SharedInvalidator] it reaches every
// replica. It is safe for concurrent use, as are all Invalidate methods.
func (c *Client) Invalidate(token string) {
	key := c.key(token)
	at := c.cfg.now()
	c.invalidateKey(key, at, false)
	if si, ok := c.cfg.shared.(SharedInvalidator); ok {
		_ = si.InvalidateShared(context.Background(), key, token, at)
	}
}

// InvalidateCacheKey is [Client.Invalidate] in this process only, for a
// caller that has the cache key rather than the token.
func (c *Client) InvalidateCacheKey(key [sha256.Size]byte) { c.invalidateKey(key, c.cfg.now(), false) }

// InvalidateCacheKeyAt applies, in this process only, an invalidation of
// the token with that key (see [Client.CacheKey]) that another replica
// reports it made at the given time: answers filled at or before at are
// dropped and not cached; a report no later than one already applied for
// the key changes nothing.
func (c *Client) InvalidateCacheKeyAt(key [sha256.Size]byte, at time.Time) {
	c.invalidateKey(key, at, true)
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
	c.invalidateID(revKey{bySubject, subject}, at, false)
	if si, ok := c.cfg.shared.(SharedInvalidator); ok {
		_ = si.InvalidateSubjectShared(context.Background(), subject, at)
	}
}

// InvalidateSubjectAt applies, in this process only, an invalidation of
// the subject that another replica reports it made at the given time:
// results filled at or before at count as stale; a report no later than
// one already applied for the subject changes nothing.
func (c *Client) InvalidateSubjectAt(subject string, at time.Time) {
	c.invalidateID(revKey{bySubject, subject}, at, true)
}

// InvalidateTokenID makes every result cached for the token whose jti claim
// is jti count as stale, as [Client.InvalidateSubject] does for a user: call
// it when one token is revoked and you know its ID but not the token, as
// ZITADEL's token-removed events say. With a [SharedInvalidator] it reaches
// every replica.
func (c *Client) InvalidateTokenID(jti string) {
	at := c.cfg.now()
	c.invalidateID(revKey{byTokenID, jti}, at, false)
	if si, ok := c.cfg.shared.(SharedInvalidator); ok {
		_ = si.InvalidateTokenIDShared(context.Background(), jti, at)
	}
}

// InvalidateTokenIDAt applies, in this process only, an invalidation of the
// token ID that another replica reports it made at the given time, as
// [Client.InvalidateSubjectAt] does for a subject.
func (c *Client) InvalidateTokenIDAt(jti string, at time.Time) {
	c.invalidateID(revKey{byTokenID, jti}, at, true)
}

// Purge drops every result cached in this process, and keeps answers that
// are in the air from being cached: a shared cache calls it when it may have
// missed invalidations (a lost subscription). Every watcher of
// [Client.Watch] is told.
func (c *Client) Purge() {
	c.record(func(gen uint64) bool { c.rev.purged = gen; return true })
	if c.cache != nil {
		c.cache.Purge()
		if c.neg != nil {
			c.neg.Purge()
		}
	}
	c.notify(watchKey{}, false, 0)
}

// watchKey names what a watcher waits for: a cache key, a subject or a
// token ID; the zero watchKey (a purge) concerns every watcher.
type watchKey struct {
	kind revKind
	id   string
	key  [sha256.Size]byte
}

type watcher struct {
	ch     chan struct{}
	keys   []watchKey
	filled int64 // when the watched decision was filled (Unix ns); 0 if unknown
	once   sync.Once
}

// Watch returns a channel that is closed once the decision for token, whose
// introspection result is r, is invalidated: by [Client.Invalidate] of the
// token or its cache key, [Client.InvalidateSubject] of r's subject,
// [Client.InvalidateTokenID] of r's jti, or [Client.Purge], in this process
// or as another replica reports it. stop releases the watcher; call it when
// the request ends. It does not watch expiry: the caller knows r's exp. A
// replica's report of an invalidation made before r was filled (a late or
// replayed message) does not close it. Watching costs nothing on the hit
// path and a map update per call here.
func (c *Client) Watch(token string, r *Response) (invalidated <-chan struct{}, stop func()) {
	key := c.key(token)
	w := &watcher{ch: make(chan struct{}), keys: []watchKey{{key: key}}}
	if c.cache != nil {
		if e, ok := c.cache.Get(key); ok && e.resp == r {
			w.filled = e.stamp.filled
		}
	}
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

// unwatch forgets w, and reports whether this call did (a watcher stopped
// and told at once is forgotten by one of the two).
func (c *Client) unwatch(w *watcher) bool {
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
	return removed
}

// notify closes the channels of the watchers of k (of all, for a purge) and
// forgets them; for a reported invalidation made at at, only those whose
// decision was filled at or before it.
func (c *Client) notify(k watchKey, remote bool, at int64) {
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
			if !remote || w.filled <= at { // a report older than the decision spares it
				hit = append(hit, w)
			}
		}
	}
	rv.watchMu.Unlock()
	for _, w := range hit {
		if c.unwatch(w) { // else stopped meanwhile: a stopped watcher is never told
			w.once.Do(func() { close(w.ch) })
		}
	}
}
