package rediscache

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Message kinds on the invalidation channel.
const (
	msgKey     = 'k' // a token, by its cache key (SHA-256 of the token)
	msgSubject = 's'
	msgTokenID = 'j'

	msgVersion = 2
	msgPad     = 64 // plaintexts are padded to a multiple of this, to hide lengths
	msgMaxData = 4096
)

// raiseScript sets KEYS[1] to ARGV[1] with a TTL of ARGV[2] ms unless it
// already holds a later time. Times are zero-padded to 20 digits, so that
// Lua compares them as strings, exactly.
var raiseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if (not v) or v < ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1`)

// InvalidateShared implements [introspect.SharedInvalidator]: it deletes
// token's entry, leaves a tombstone holding at that outlives any entry
// (the revocation TTL), so that an entry filled at or before at is a miss
// for every replica even if its ciphertext is put back, and then tells
// every replica's [Cache.Listen], sealing the token's cache key in the
// message.
func (c *Cache) InvalidateShared(ctx context.Context, key [sha256.Size]byte, token string, at time.Time) error {
	return c.invalidate(ctx, "invalidate", at, message{kind: msgKey, at: at.UnixNano(), data: key[:]}, func(k *keyring) (del, raise string) {
		id := k.tokenID(token)
		return c.entryKey(id), c.tombstoneKey(id)
	})
}

// InvalidateSubjectShared implements [introspect.SharedInvalidator]: it
// records at in Redis under a name derived from the secret and the subject,
// so that entries of the subject filled at or before it are refused by any
// replica that reads them later, and tells every replica's [Cache.Listen]
// in a sealed message.
func (c *Cache) InvalidateSubjectShared(ctx context.Context, subject string, at time.Time) error {
	return c.invalidate(ctx, "invalidate subject", at, message{kind: msgSubject, at: at.UnixNano(), data: []byte(subject)}, func(k *keyring) (string, string) {
		return "", c.subjectKey(k, subject)
	})
}

// InvalidateTokenIDShared implements [introspect.SharedInvalidator] as
// [Cache.InvalidateSubjectShared] does, for the token whose jti claim is
// jti.
func (c *Cache) InvalidateTokenIDShared(ctx context.Context, jti string, at time.Time) error {
	return c.invalidate(ctx, "invalidate token ID", at, message{kind: msgTokenID, at: at.UnixNano(), data: []byte(jti)}, func(k *keyring) (string, string) {
		return "", c.tokenIDKey(k, jti)
	})
}

// invalidate records the invalidation under every secret, and only then
// publishes it: a replica that hears it and asks Redis finds the record.
func (c *Cache) invalidate(ctx context.Context, op string, at time.Time, m message, keys func(*keyring) (del, raise string)) error {
	if len(m.data) == 0 || len(m.data) > msgMaxData {
		return fmt.Errorf("rediscache: %s: identifier of %d bytes, want 1 to %d", op, len(m.data), msgMaxData)
	}
	payloads := make([][]byte, len(c.rings))
	for i, k := range c.rings {
		p, err := k.sealMessage(m)
		if err != nil {
			return err
		}
		payloads[i] = p
	}
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, err := c.rdb.Pipelined(rctx, func(p redis.Pipeliner) error {
		for _, k := range c.rings {
			del, raise := keys(k)
			if del != "" {
				p.Del(rctx, del)
			}
			raiseScript.Eval(rctx, p, []string{raise}, fmt.Sprintf("%020d", at.UnixNano()), c.revTTL.Milliseconds())
		}
		return nil
	})
	pctx, cancel := context.WithTimeout(ctx, c.timeout) // even if the records failed
	defer cancel()
	_, perr := c.rdb.Pipelined(pctx, func(p redis.Pipeliner) error {
		for i, k := range c.rings {
			p.Publish(pctx, k.channel, payloads[i])
		}
		return nil
	})
	if err = errors.Join(err, perr); err != nil {
		c.fail(op, err)
	}
	return err
}

// message is one invalidation as replicas exchange it.
type message struct {
	kind byte
	at   int64 // Unix ns, on the invalidating replica's clock
	data []byte
}

// sealMessage encodes m as version, nonce and AES-256-GCM ciphertext of
// (kind, at, length, data, padding), with the channel as associated data.
func (k *keyring) sealMessage(m message) ([]byte, error) {
	n := 1 + 8 + 2 + len(m.data)
	plain := make([]byte, 0, (n+msgPad-1)/msgPad*msgPad)
	plain = append(plain, m.kind)
	plain = binary.BigEndian.AppendUint64(plain, uint64(m.at))
	plain = binary.BigEndian.AppendUint16(plain, uint16(len(m.data)))
	plain = append(plain, m.data...)
	plain = plain[:cap(plain)] // zero padding
	ns := k.msg.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(plain)+k.msg.Overhead())
	out[0] = msgVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return k.msg.Seal(out, out[1:], plain, []byte(k.channel)), nil
}

// openMessage is the inverse of sealMessage; any error means the message was
// not sealed by a holder of this secret for this channel.
func (k *keyring) openMessage(payload []byte) (message, error) {
	ns := k.msg.NonceSize()
	bad := errors.New("rediscache: not a sealed message")
	if len(payload) < 1+ns || payload[0] != msgVersion {
		return message{}, bad
	}
	plain, err := k.msg.Open(nil, payload[1:1+ns], payload[1+ns:], []byte(k.channel))
	if err != nil || len(plain) < 11 {
		return message{}, bad
	}
	m := message{kind: plain[0], at: int64(binary.BigEndian.Uint64(plain[1:9]))}
	n := int(binary.BigEndian.Uint16(plain[9:11]))
	if n == 0 || 11+n > len(plain) {
		return message{}, bad
	}
	m.data = plain[11 : 11+n]
	switch m.kind {
	case msgKey:
		if n != sha256.Size {
			return message{}, bad
		}
	case msgSubject, msgTokenID:
	default:
		return message{}, bad
	}
	return m, nil
}
