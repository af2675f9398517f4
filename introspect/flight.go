package introspect

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync/atomic"

	"github.com/tokenguard/tokenguard/internal/telemetry"
)

// introspectMiss asks the server through the singleflight group. It is apart
// from Introspect so that the closure's captures stay off the hit path.
func (c *Client) introspectMiss(ctx context.Context, key [sha256.Size]byte, token string) (*Response, error) {
	var led atomic.Bool // this caller's flight ran the function
	ch := c.group.DoChan(string(key[:]), func() (any, error) {
		led.Store(true)
		// A flight that finished between our lookup and DoChan has filled
		// the cache: look again so that one token costs one call.
		switch r, _, state, _ := c.peek(key, c.cfg.now()); state {
		case hitActive:
			return r, nil
		case hitInactive:
			return inactive, nil
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.timeout)
		defer cancel()
		if r, ok := c.lookupShared(ctx, key, token); ok {
			return r, nil
		}
		r, err := c.call(ctx, token)
		if err != nil {
			return nil, err
		}
		c.store(ctx, key, token, r)
		return r, nil
	})
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

// lookupShared asks the shared cache, if any, and copies a fresh answer that
// no subject invalidation has overtaken into the LRU.
func (c *Client) lookupShared(ctx context.Context, key [sha256.Size]byte, token string) (*Response, bool) {
	if c.cfg.shared == nil {
		return nil, false
	}
	e, ok, err := c.cfg.shared.Lookup(ctx, token)
	now := c.cfg.now()
	if err != nil || !ok || !now.Before(e.Fresh) {
		c.metrics.Lookup(ctx, telemetry.Shared, telemetry.Miss)
		return nil, false
	}
	r, err := Decode(e.Body)
	if err != nil || c.revokedSince(r.Subject, e.Filled.UnixNano()) {
		c.metrics.Lookup(ctx, telemetry.Shared, telemetry.Miss)
		return nil, false
	}
	c.metrics.Lookup(ctx, telemetry.Shared, telemetry.Hit)
	c.metrics.Age(ctx, now.Sub(e.Filled))
	c.storeLocal(ctx, key, r, e)
	return r, true
}

// store caches r in the LRU and the shared cache: an active result fresh
// until the earlier of its exp and the max TTL (kept up to the
// stale-if-error window longer, never past exp), an inactive one for the
// negative TTL.
func (c *Client) store(ctx context.Context, key [sha256.Size]byte, token string, r *Response) {
	now := c.cfg.now()
	e := SharedEntry{Filled: now}
	if !r.Active {
		e.Fresh = now.Add(c.cfg.negativeTTL)
		e.Expires = e.Fresh
	} else {
		exp := r.Expiration.AsTime()
		e.Fresh = now.Add(c.cfg.maxTTL)
		if !exp.IsZero() && exp.Before(e.Fresh) {
			e.Fresh = exp
		}
		e.Expires = e.Fresh
		if c.cfg.staleIfErr > 0 {
			e.Expires = now.Add(c.cfg.maxTTL + c.cfg.staleIfErr)
			if !exp.IsZero() && exp.Before(e.Expires) {
				e.Expires = exp
			}
		}
	}
	c.storeLocal(ctx, key, r, e)
	if c.cfg.shared != nil && e.Fresh.After(now) && (r.Active || c.cfg.negativeTTL > 0) {
		e.Body, _ = r.MarshalJSON()
		_ = c.cfg.shared.Store(ctx, token, e) // best effort: the implementation reports its own errors
	}
}

func (c *Client) storeLocal(ctx context.Context, key [sha256.Size]byte, r *Response, e SharedEntry) {
	var evicted bool
	if !r.Active {
		c.cache.Remove(key) // a stale active entry must not outlive the news
		if c.neg != nil {
			evicted = c.neg.Add(key, struct{}{}, e.Expires)
		}
	} else {
		evicted = c.cache.Add(key, cached{resp: r, fresh: e.Fresh.UnixNano(), filled: e.Filled.UnixNano()}, e.Expires) // an exp already past stores nothing
	}
	if evicted {
		c.metrics.Evicted(ctx, telemetry.LRU)
	}
}
