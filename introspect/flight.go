package introspect

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/tokenguard/tokenguard/internal/telemetry"
)

// introspectMiss asks the server through the singleflight group. It is apart
// from Introspect so that the closure's captures stay off the hit path.
//
// The flight's key carries the generation of invalidations (see
// invalidate.go): a request that starts after an invalidation never joins a
// flight that started before it, and that flight's answer, stamped with the
// older generation, is not cached.
func (c *Client) introspectMiss(ctx context.Context, key [sha256.Size]byte, token string) (*Response, error) {
	var led atomic.Bool // this caller's flight ran the function
	gen := c.rev.gen.Load()
	ch := c.group.DoChan(flightKey(key, gen), c.flight(ctx, key, token, gen, &led))
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("introspect: waiting for the authorization server: %w", context.Cause(ctx))
	case res := <-ch:
		if !led.Load() {
			c.metrics.Coalesced(ctx)
		}
		if res.Err != nil {
			return nil, res.Err
		}
		return result(res.Val.(*Response), nil)
	}
}

// flightKey is the singleflight key of the flights about the token with
// this key that start under generation gen.
func flightKey(key [sha256.Size]byte, gen uint64) string {
	var fk [sha256.Size + 8]byte
	copy(fk[:], key[:])
	binary.LittleEndian.PutUint64(fk[sha256.Size:], gen)
	return string(fk[:])
}

// flight returns the function of a flight about token, started under
// generation gen: the shared cache, else the server, and the answer
// cached. led, if not nil, is set when the function runs. A local decision
// in the LRU ([WithLocalJWT]) is what a flight confirms, never its answer.
func (c *Client) flight(ctx context.Context, key [sha256.Size]byte, token string, gen uint64, led *atomic.Bool) func() (any, error) {
	return func() (any, error) {
		growStack()
		if led != nil {
			led.Store(true)
		}
		// A flight that finished between our lookup and DoChan has filled
		// the cache: look again so that one token costs one call.
		switch r, _, state, _ := c.peek(key, c.cfg.now()); state {
		case hitActive:
			if !r.local {
				return r, nil
			}
		case hitInactive:
			return inactive, nil
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.timeout)
		defer cancel()
		if r, ok := c.lookupShared(ctx, key, token, gen); ok { // settled there, before the answer is visible
			return r, nil
		}
		// Stamped with the time the request is sent, not the time the
		// answer arrives: an invalidation in between wins.
		s := stamp{filled: c.cfg.now().UnixNano(), gen: gen}
		r, err := c.call(ctx, token)
		if err != nil {
			c.unsettled(ctx, key)
			return nil, err
		}
		// The token's record first (and an inactive answer ends its
		// streams, whether or not it may be cached): once the answer is
		// visible in the cache, the token must already count as one the
		// server decides.
		c.settled(ctx, key, token, r)
		c.store(ctx, key, token, r, s)
		return r, nil
	}
}

// lookupShared asks the shared cache, if any, and copies a fresh answer that
// no invalidation has overtaken into the LRU. The writer's times are not
// trusted past this replica's own rules: see [Client.capShared].
func (c *Client) lookupShared(ctx context.Context, key [sha256.Size]byte, token string, gen uint64) (*Response, bool) {
	if c.cfg.shared == nil {
		return nil, false
	}
	e, ok, err := c.cfg.shared.Lookup(ctx, token)
	if err != nil || !ok {
		c.metrics.Lookup(ctx, telemetry.Shared, telemetry.Miss)
		return nil, false
	}
	r, err := Decode(e.Body)
	now := c.cfg.now()
	if err == nil {
		e, ok = c.capShared(r, e, now)
	}
	s := stamp{filled: e.Filled.UnixNano(), asked: gen} // gen 0: judged by the clocks
	if err != nil || !ok || !now.Before(e.Fresh) || c.deadForStore(key, r, s) {
		c.metrics.Lookup(ctx, telemetry.Shared, telemetry.Miss)
		return nil, false
	}
	c.metrics.Lookup(ctx, telemetry.Shared, telemetry.Hit)
	c.metrics.Age(ctx, now.Sub(e.Filled), telemetry.Introspected)
	c.settled(ctx, key, token, r) // before the answer is visible: see flight
	c.storeLocal(ctx, key, r, e, s)
	return r, true
}

// maxSharedSkew is how far in the future a shared entry's Filled may be, to
// allow for the writer's clock running ahead of this one; an entry further
// ahead is refused.
const maxSharedSkew = 5 * time.Second

// capShared applies this replica's rules to an entry another replica wrote:
// Fresh and Expires no later than what this replica would have given an
// answer introspected at Filled (its max TTL, its negative TTL, its
// stale-if-error window, the token's exp), nor than now plus those; Filled
// no later than now, for the revocation checks. It reports false for an
// entry filled more than [maxSharedSkew] ahead of this clock.
func (c *Client) capShared(r *Response, e SharedEntry, now time.Time) (SharedEntry, bool) {
	if e.Filled.After(now.Add(maxSharedSkew)) {
		return e, false
	}
	fresh, expires := c.lifetime(r, e.Filled)
	nowFresh, nowExpires := c.lifetime(r, now)
	e.Fresh = earliest(e.Fresh, fresh, nowFresh)
	e.Expires = earliest(e.Expires, expires, nowExpires)
	if e.Expires.Before(e.Fresh) {
		e.Fresh = e.Expires
	}
	if e.Filled.After(now) {
		e.Filled = now
	}
	return e, true
}

func earliest(t ...time.Time) time.Time {
	m := t[0]
	for _, x := range t[1:] {
		if x.Before(m) {
			m = x
		}
	}
	return m
}

// lifetime returns until when an answer introspected at filled is fresh,
// and until when it is kept: an active one fresh until the earlier of its
// exp and the max TTL (kept up to the stale-if-error window longer, never
// past exp), an inactive one for the negative TTL.
func (c *Client) lifetime(r *Response, filled time.Time) (fresh, expires time.Time) {
	if !r.Active {
		fresh = filled.Add(c.cfg.negativeTTL)
		return fresh, fresh
	}
	exp := r.Expiration.AsTime()
	fresh = filled.Add(c.cfg.maxTTL)
	if !exp.IsZero() && exp.Before(fresh) {
		fresh = exp
	}
	expires = fresh
	if c.cfg.staleIfErr > 0 {
		expires = filled.Add(c.cfg.maxTTL + c.cfg.staleIfErr)
		if !exp.IsZero() && exp.Before(expires) {
			expires = exp
		}
	}
	return fresh, expires
}

// store caches r, asked for as stamped by s, in the LRU and the shared
// cache for its [Client.lifetime], unless an invalidation overtook it.
func (c *Client) store(ctx context.Context, key [sha256.Size]byte, token string, r *Response, s stamp) {
	if c.deadForStore(key, r, s) {
		return
	}
	now := c.cfg.now()
	e := SharedEntry{Filled: time.Unix(0, s.filled)}
	e.Fresh, e.Expires = c.lifetime(r, e.Filled)
	c.storeLocal(ctx, key, r, e, s)
	if c.cfg.shared != nil && e.Fresh.After(now) && (r.Active || c.cfg.negativeTTL > 0) {
		e.Body, _ = r.MarshalJSON()
		_ = c.cfg.shared.Store(ctx, token, e) // best effort: the implementation reports its own errors
	}
}

// storeLocal adds r to the LRU, then checks again for an invalidation that
// raced it: the invalidation records itself before it removes the entry, so
// one of the two removes what the other added.
func (c *Client) storeLocal(ctx context.Context, key [sha256.Size]byte, r *Response, e SharedEntry, s stamp) {
	var evicted bool
	if !r.Active {
		c.cache.Remove(key) // a stale active entry must not outlive the news
		if c.neg != nil {
			evicted = c.neg.Add(key, struct{}{}, e.Expires)
			if c.deadForStore(key, r, s) {
				c.neg.Remove(key)
			}
		}
	} else {
		evicted = c.cache.Add(key, cached{resp: r, fresh: e.Fresh.UnixNano(), stamp: s}, e.Expires) // an exp already past stores nothing
		if c.deadForStore(key, r, s) {
			c.cache.Remove(key)
		}
	}
	if evicted {
		c.metrics.Evicted(ctx, telemetry.LRU)
	}
}

// growStack grows the calling goroutine's stack to about 16 KiB, from the
// small stack a flight's new goroutine starts with (singleflight starts one
// per flight). The client's round trip through net/http runs deeper than
// that: growing there copies the whole deep stack, two or three times over,
// at about 6% of the CPU a cold request cost in the load benchmark's profile. Grown here, while the stack
// holds a few frames, it is one cheap copy, and a stack of that size comes
// from the runtime's per-processor cache.
//
//go:noinline
func growStack() {
	var pad [8 << 10]byte
	touchStack(pad[:])
}

//go:noinline
func touchStack(b []byte) { b[0] = 1 }
