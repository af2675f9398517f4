package rediscache

import (
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenguard/tokenguard/introspect"
)

const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// Listen applies to client the invalidations that other replicas publish,
// until ctx is done; then it returns ctx's error. Run it in a goroutine of
// your own, once per Cache; a nil client is an error.
//
// Listen reads the subscription itself, so no message is dropped on the way
// to client. Redis pub/sub delivers every message to a connected subscriber
// in order and drops messages only for a subscriber that is not connected
// (Redis disconnects one that lags too far, per client-output-buffer-limit),
// so Listen treats every gap as a loss: once every channel is subscribed,
// the first time and after each reconnection, it calls
// [introspect.Client.Purge], and it purges again as soon as it finds the
// subscription lost (a read error, or no answer to a ping within two ping
// intervals, see [WithPingInterval]). Between a loss and its detection the
// replica serves what it cached before, as it would without Redis.
//
// Messages that do not open under the secret (forged, tampered, or from
// another namespace or secret) or that are older than the revocation TTL
// are ignored, counted ([Cache.Rejected]) and logged at most once a minute.
func (c *Cache) Listen(ctx context.Context, client *introspect.Client) error {
	if client == nil {
		return errors.New("rediscache: Listen with a nil introspect.Client")
	}
	wait := minBackoff
	for {
		subscribed, err := c.session(ctx, client)
		c.listening.Store(false)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if subscribed {
			c.errs.Add(1)
			client.Purge() // what was published since the connection broke is lost
			c.logger.Warn("tokenguard: redis invalidation subscription lost; local cache purged, resubscribing", "error", errString(err))
			wait = minBackoff
		} else {
			c.fail("subscribe", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, maxBackoff)
	}
}

// Listening reports whether [Cache.Listen] holds a subscription to every
// channel and has purged the local cache since it was made. A replica that
// is not listening may miss invalidations; a readiness check can use it.
// It is safe for concurrent use.
func (c *Cache) Listening() bool { return c.listening.Load() }

// session subscribes on a connection of its own and applies messages until
// the connection fails or ctx is done. It reports whether every channel was
// subscribed (and the local cache purged).
func (c *Cache) session(ctx context.Context, client *introspect.Client) (subscribed bool, _ error) {
	sub := c.rdb.Subscribe(ctx) // no channels yet: no connection yet
	defer sub.Close()
	stop := context.AfterFunc(ctx, func() { _ = sub.Close() }) // unblocks ReceiveTimeout
	defer stop()
	channels := make([]string, len(c.rings))
	for i, k := range c.rings {
		channels[i] = k.channel
	}
	if err := sub.Subscribe(ctx, channels...); err != nil {
		return false, err
	}
	confirmed := map[string]bool{}
	pinged := false
	for {
		v, err := sub.ReceiveTimeout(ctx, c.ping)
		if err != nil {
			var ne net.Error
			if !pinged && errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				if err := sub.Ping(ctx); err != nil {
					return subscribed, err
				}
				pinged = true
				continue
			}
			return subscribed, err // includes a ping unanswered for an interval
		}
		pinged = false
		switch m := v.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && !subscribed {
				confirmed[m.Channel] = true
				if len(confirmed) == len(channels) {
					client.Purge() // anything published before now was missed
					subscribed = true
					c.listening.Store(true)
				}
			}
		case *redis.Message:
			c.apply(client, m.Channel, m.Payload)
		}
	}
}

// apply opens one message and hands it to client, or rejects it.
func (c *Cache) apply(client *introspect.Client, channel, payload string) {
	for _, k := range c.rings {
		if k.channel != channel {
			continue
		}
		m, err := k.openMessage([]byte(payload))
		if err != nil || time.Since(time.Unix(0, m.at)) > c.revTTL {
			break // an old message can concern no entry: a replay
		}
		at := time.Unix(0, m.at)
		switch m.kind {
		case msgKey:
			client.InvalidateCacheKeyAt([sha256.Size]byte(m.data), at)
		case msgSubject:
			client.InvalidateSubjectAt(string(m.data), at)
		case msgTokenID:
			client.InvalidateTokenIDAt(string(m.data), at)
		}
		return
	}
	n := c.rejected.Add(1)
	now, last := time.Now().UnixNano(), c.lastWarn.Load()
	if now-last >= int64(time.Minute) && c.lastWarn.CompareAndSwap(last, now) {
		c.logger.Warn("tokenguard: ignored invalidation messages that do not open under the secret: someone without it publishes on the channel, or the replicas' secrets differ",
			"rejected", n)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
