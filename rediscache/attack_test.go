package rediscache_test

// Attacks by someone who can read, write and publish on the API's Redis but
// does not hold the replicas' secret, and the failures a replica must not
// paper over (a lost subscription). Each test fails on the version of
// rediscache whose keys were derived from the token and the public namespace
// alone.

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/rediscache"
)

// oldEntryKey is the Redis key the first version gave token's entry:
// SHA-256 of the public namespace and the token.
func oldEntryKey(namespace, token string) string {
	return rediscache.DefaultPrefix + "e:" + hex.EncodeToString(oldDigest(namespace, 't', token))
}

func oldDigest(namespace string, kind byte, s string) []byte {
	h := sha256.New()
	h.Write([]byte(namespace))
	h.Write([]byte{0, kind, 0})
	h.Write([]byte(s))
	return h.Sum(nil)
}

// sealAsAttacker seals plain the way the first version did, with a key that
// anyone who picks the token can compute: HKDF(token, namespace).
func sealAsAttacker(t *testing.T, version byte, token, namespace, key string, plain []byte) []byte {
	t.Helper()
	k, err := hkdf.Key(sha256.New, []byte(token), []byte(namespace), "tokenguard rediscache v1 entry", 32)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(k)
	aead, _ := cipher.NewGCM(block)
	out := make([]byte, 1+aead.NonceSize())
	out[0] = version
	_, _ = rand.Read(out[1:])
	return aead.Seal(out, out[1:], plain, []byte(key))
}

// TestForgedEntryIsAMiss: Mallory picks a token, seals an admin answer for it
// under every key she can compute and over every entry in Redis, and sends
// the token. Every attempt must be a miss that is introspected (and refused).
func TestForgedEntryIsAMiss(t *testing.T) {
	as, keyJSON, rs := setup(t)
	ctx := context.Background()
	a := newReplica(t, as, keyJSON, rs, "api")
	legit := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
	if got := a.get(legit); got != 200 {
		t.Fatalf("setup: %d", got)
	}
	rdb := rs.client(t)
	existing, err := rdb.Keys(ctx, "*").Result()
	if err != nil || len(existing) == 0 {
		t.Fatalf("keys %v, %v", existing, err)
	}
	const forged = "mallory-picked-this-token-0123456789"
	now := time.Now()
	roles := `{"admin":{"1":"acme.example"}}`
	body := fmt.Sprintf(`{"active":true,"sub":"mallory","aud":[%q],"exp":%d,"urn:zitadel:iam:org:project:roles":%s,"urn:zitadel:iam:org:project:%s:roles":%s}`,
		project, now.Add(time.Hour).Unix(), roles, project, roles)
	plain := fmt.Appendf(nil, `{"f":%d,"r":%d,"x":%d,"b":%s}`, now.UnixNano(), now.Add(time.Hour).UnixNano(), now.Add(time.Hour).UnixNano(), body)
	d := sha256.Sum256([]byte(forged))
	candidates := append([]string{
		oldEntryKey("api", forged),
		rediscache.DefaultPrefix + "e:" + hex.EncodeToString(d[:]),
		rediscache.DefaultPrefix + "e:{" + hex.EncodeToString(d[:]) + "}",
		rediscache.DefaultPrefix + "e:{" + hex.EncodeToString(oldDigest("api", 't', forged)) + "}",
	}, existing...)
	// Without negative caching every refusal of the forged token is a fresh
	// introspection, so the count shows that no forgery was served.
	b := newReplicaOn(t, as, keyJSON, rs.client(t), "api", testSecret, nil, introspect.WithNegativeTTL(0))
	for _, key := range candidates {
		for _, version := range []byte{1, 2} {
			if err := rdb.Set(ctx, key, sealAsAttacker(t, version, forged, "api", key, plain), time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			calls := as.Calls()
			if got := b.get(forged); got != 401 || as.Calls() != calls+1 {
				t.Errorf("forged entry under %s (format %d): %d after %d introspections, want 401 after 1", key, version, got, as.Calls()-calls)
			}
		}
	}
	calls := as.Calls()
	if got := b.get(legit); got != 200 || as.Calls() != calls+1 {
		t.Errorf("a legitimate token whose entry was overwritten: %d after %d introspections, want 200 after 1", got, as.Calls()-calls)
	}
}

// spy subscribes to every channel of rdb, as anyone with access to Redis can.
func spy(t *testing.T, rdb *redis.Client) *redis.PubSub {
	t.Helper()
	sub := rdb.PSubscribe(context.Background(), "*")
	t.Cleanup(func() { sub.Close() })
	if _, err := sub.ReceiveTimeout(context.Background(), 3*time.Second); err != nil { // the confirmation
		t.Fatal(err)
	}
	return sub
}

// messages reads n messages from sub.
func messages(t *testing.T, sub *redis.PubSub, n int) []*redis.Message {
	t.Helper()
	var out []*redis.Message
	for len(out) < n {
		v, err := sub.ReceiveTimeout(context.Background(), 3*time.Second)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", len(out), n, err)
		}
		if m, ok := v.(*redis.Message); ok {
			out = append(out, m)
		}
	}
	return out
}

// TestForgedPublishIsIgnoredAndCounted: Mallory publishes invalidations in
// the old clear format, random bytes and look-alikes of the new format on
// every channel she can see; the listening replica acts on none and counts
// each.
func TestForgedPublishIsIgnoredAndCounted(t *testing.T) {
	as, keyJSON, rs := setup(t)
	ctx := context.Background()
	b := newReplica(t, as, keyJSON, rs, "api")
	b.listen(t)
	tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}, Extra: map[string]any{"jti": "alice-jti"}})
	if got := b.get(tok); got != 200 {
		t.Fatalf("setup: %d", got)
	}
	rdb := rs.client(t)
	channels, err := rdb.PubSubChannels(ctx, "*").Result()
	if err != nil || len(channels) == 0 {
		t.Fatalf("channels %v, %v", channels, err)
	}
	key := sha256.Sum256([]byte(tok))
	random := make([]byte, 128)
	_, _ = rand.Read(random)
	forgeries := []string{
		"k:" + hex.EncodeToString(key[:]),
		fmt.Sprintf("s:%d:alice", time.Now().UnixNano()),
		"j:alice-jti",
		"",
		string(random),
		"\x02" + string(random),
		"\x02" + strings.Repeat("\x00", 12+64+16),
		"\x02" + string(key[:]),
	}
	var delivered int64
	for _, ch := range append(channels, rediscache.DefaultPrefix+"invalidate") {
		for _, f := range forgeries {
			n, err := rdb.Publish(ctx, ch, f).Result()
			if err != nil {
				t.Fatal(err)
			}
			delivered += n
		}
	}
	if delivered < int64(len(forgeries)) {
		t.Fatalf("%d forgeries reached a subscriber, want at least %d", delivered, len(forgeries))
	}
	waitFor(t, "every forgery counted", func() bool { return b.shared.Rejected() >= delivered })
	calls := as.Calls()
	if got := b.get(tok); got != 200 || as.Calls() != calls {
		t.Errorf("after forged invalidations: %d after %d introspections, want 200 from the LRU", got, as.Calls()-calls)
	}
	if got := b.shared.Rejected(); got != delivered {
		t.Errorf("Rejected() = %d, want %d", got, delivered)
	}
}

// TestMessagesFromAnotherNamespaceOrSecretAreIgnored: another API on the same
// Redis, and a deployment with another secret, publish on channels of their
// own; replayed onto this API's channel their messages are rejected.
func TestMessagesFromAnotherNamespaceOrSecretAreIgnored(t *testing.T) {
	as, keyJSON, rs := setup(t)
	ctx := context.Background()
	b := newReplica(t, as, keyJSON, rs, "api")
	b.listen(t)
	tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
	if got := b.get(tok); got != 200 {
		t.Fatalf("setup: %d", got)
	}
	rdb := rs.client(t)
	mine, err := rdb.PubSubChannels(ctx, "*").Result()
	if err != nil || len(mine) != 1 {
		t.Fatalf("channels %v, %v; want B's one", mine, err)
	}
	sub := spy(t, rdb)
	otherAPI := newReplica(t, as, keyJSON, rs, "another api")
	otherSecret := newReplicaOn(t, as, keyJSON, rs.client(t), "api", []byte("the-secret-of-another-deployment-0123"), nil)
	for _, o := range []*replica{otherAPI, otherSecret} {
		o.client.InvalidateSubject("alice")
		o.client.Invalidate(tok)
	}
	captured := messages(t, sub, 4)
	for _, m := range captured {
		if m.Channel == mine[0] {
			t.Errorf("another API or secret published on B's channel %s", m.Channel)
		}
	}
	calls := as.Calls()
	if got := b.get(tok); got != 200 || as.Calls() != calls {
		t.Errorf("another API's invalidations reached B: %d after %d introspections", got, as.Calls()-calls)
	}
	for _, m := range captured {
		if err := rdb.Publish(ctx, mine[0], m.Payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "replayed foreign messages counted", func() bool { return b.shared.Rejected() >= int64(len(captured)) })
	calls = as.Calls()
	if got := b.get(tok); got != 200 || as.Calls() != calls {
		t.Errorf("foreign messages replayed on B's channel changed B: %d after %d introspections", got, as.Calls()-calls)
	}
}

// TestCiphertextPutBackAfterInvalidateIsAMiss: Mallory saves every value in
// Redis, waits for the token's invalidation and puts the old ciphertexts
// back. The invalidating replica, a listening one and one that starts later
// all refuse it.
func TestCiphertextPutBackAfterInvalidateIsAMiss(t *testing.T) {
	as, keyJSON, rs := setup(t)
	ctx := context.Background()
	noNeg := introspect.WithNegativeTTL(0) // every refusal is an introspection
	a := newReplicaOn(t, as, keyJSON, rs.client(t), "api", testSecret, nil, noNeg)
	b := newReplicaOn(t, as, keyJSON, rs.client(t), "api", testSecret, nil, noNeg)
	b.listen(t)
	tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
	if a.get(tok) != 200 || b.get(tok) != 200 {
		t.Fatal("setup: token not accepted")
	}
	rdb := rs.client(t)
	saved := map[string][]byte{}
	keys, _ := rdb.Keys(ctx, "*").Result()
	for _, k := range keys {
		saved[k], _ = rdb.Get(ctx, k).Bytes()
	}
	if len(saved) == 0 {
		t.Fatal("nothing in Redis")
	}
	as.Revoke(tok)
	a.client.Invalidate(tok)
	waitFor(t, "B hears the invalidation", func() bool { return b.get(tok) == 401 })
	for k, v := range saved {
		if err := rdb.Set(ctx, k, v, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	c := newReplicaOn(t, as, keyJSON, rs.client(t), "api", testSecret, nil, noNeg)
	for _, r := range []struct {
		name string
		*replica
	}{{"the invalidating replica", a}, {"a listening replica", b}, {"a replica started later", c}} {
		calls := as.Calls()
		if got := r.get(tok); got != 401 || as.Calls() != calls+1 {
			t.Errorf("%s, with the old ciphertext put back: %d after %d introspections, want 401 after 1", r.name, got, as.Calls()-calls)
		}
	}
}

// TestLostSubscriptionPurges: a replica whose subscription breaks while an
// invalidation is published must not go on serving the invalidated token
// from its LRU once it is back.
func TestLostSubscriptionPurges(t *testing.T) {
	t.Run("connection cut while an invalidation is published", func(t *testing.T) {
		as, keyJSON, rs := setup(t)
		px := startProxy(t, rs.addr)
		a := newReplica(t, as, keyJSON, rs, "api")
		b := newReplicaOn(t, as, keyJSON, clientFor(t, px.addr()), "api", testSecret, nil)
		b.listen(t)
		tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
		if a.get(tok) != 200 || b.get(tok) != 200 {
			t.Fatal("setup: token not accepted")
		}
		errs := b.shared.Errors()
		px.setCut(true)
		as.Revoke(tok)
		a.client.Invalidate(tok) // B is not connected: it misses the message
		px.setCut(false)
		// B may not have noticed the cut yet (it reads an error, or misses
		// a ping), so Listening can still read true: wait for the outcome,
		// which nothing but the purge on resubscribing can bring (the
		// entry is fresh for the max TTL, and B never heard the message).
		waitFor(t, "B refuses the token after resubscribing (its LRU purged)", func() bool { return b.get(tok) == 401 })
		waitFor(t, "B listens again", b.shared.Listening)
		if b.shared.Errors() == errs {
			t.Error("the lost subscription is not counted in Errors()")
		}
	})

	t.Run("CLIENT KILL TYPE pubsub in the same transaction as the PUBLISH", func(t *testing.T) {
		as, keyJSON, rs := setup(t)
		ctx := context.Background()
		b := newReplica(t, as, keyJSON, rs, "api")
		b.listen(t)
		tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
		if got := b.get(tok); got != 200 {
			t.Fatalf("setup: %d", got)
		}
		// A replica of the same API on a scratch Redis makes the
		// invalidation (its tombstone and message); they are then written
		// to B's Redis in the transaction that kills B's subscription, so
		// B misses the message for certain.
		scratch := startRedis(t)
		srdb := scratch.client(t)
		other, err := rediscache.New(srdb, "api", testSecret, quiet)
		if err != nil {
			t.Fatal(err)
		}
		sub := spy(t, srdb)
		as.Revoke(tok)
		if err := other.InvalidateShared(ctx, sha256.Sum256([]byte(tok)), tok, time.Now()); err != nil {
			t.Fatal(err)
		}
		msg := messages(t, sub, 1)[0]
		keys, _ := srdb.Keys(ctx, "*").Result()
		rdb := rs.client(t)
		_, err = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.Set(ctx, k, srdb.Get(ctx, k).Val(), time.Hour)
			}
			p.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub")
			p.Publish(ctx, msg.Channel, msg.Payload)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "B refuses the token it missed the invalidation of", func() bool { return b.get(tok) == 401 })
		waitFor(t, "B resubscribes", b.shared.Listening)
	})

	t.Run("redis restart", func(t *testing.T) {
		as, keyJSON, rs := setup(t)
		b := newReplica(t, as, keyJSON, rs, "api")
		b.listen(t)
		tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
		if got := b.get(tok); got != 200 {
			t.Fatalf("setup: %d", got)
		}
		as.Revoke(tok) // and an invalidation published while Redis was down is lost
		rs.restart(t)
		waitFor(t, "B refuses the token after Redis restarted", func() bool { return b.get(tok) == 401 })
		waitFor(t, "B resubscribes", b.shared.Listening)
	})

	t.Run("silent connection", func(t *testing.T) {
		as, keyJSON, rs := setup(t)
		px := startProxy(t, rs.addr)
		a := newReplica(t, as, keyJSON, rs, "api")
		b := newReplicaOn(t, as, keyJSON, clientFor(t, px.addr()), "api", testSecret, []rediscache.Option{rediscache.WithPingInterval(200 * time.Millisecond)})
		b.listen(t)
		tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
		if a.get(tok) != 200 || b.get(tok) != 200 {
			t.Fatal("setup: token not accepted")
		}
		px.freeze() // the connection stays open, nothing gets through
		as.Revoke(tok)
		a.client.Invalidate(tok)
		waitFor(t, "B finds its subscription silent", func() bool { return !b.shared.Listening() })
		start := time.Now()
		if got := b.get(tok); got != 401 {
			t.Errorf("B with a silent subscription: %d, want 401 (its LRU purged)", got)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("a request with Redis silent took %v: Redis calls must time out fast", d)
		}
		px.thaw()
		waitFor(t, "B resubscribes", b.shared.Listening)
	})
}

func TestNewRejectsShortSecrets(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true}) // never dialled
	defer rdb.Close()
	good := bytes.Repeat([]byte{7}, rediscache.MinSecretSize)
	for _, tc := range []struct {
		name   string
		secret []byte
		opts   []rediscache.Option
		want   string
	}{
		{"nil", nil, nil, "secret is 0 bytes"},
		{"empty", []byte{}, nil, "secret is 0 bytes"},
		{"one byte", []byte{1}, nil, "secret is 1 bytes"},
		{"31 bytes", bytes.Repeat([]byte{7}, 31), nil, "secret is 31 bytes"},
		{"short previous secret", good, []rediscache.Option{rediscache.WithPreviousSecret(make([]byte, 16))}, "previous secret is 16 bytes"},
		{"nil previous secret", good, []rediscache.Option{rediscache.WithPreviousSecret(nil)}, "previous secret is 0 bytes"},
		{"previous secret equal to the secret", good, []rediscache.Option{rediscache.WithPreviousSecret(good)}, "equals"},
	} {
		if _, err := rediscache.New(rdb, "api", tc.secret, tc.opts...); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "rediscache: ") {
			t.Errorf("New(%s) err = %v, want one saying %q", tc.name, err, tc.want)
		}
	}
	if _, err := rediscache.New(rdb, "api", good); err != nil {
		t.Errorf("New(32-byte secret) err = %v", err)
	}
	deaf := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer deaf.Close()
	if _, err := rediscache.New(deaf, "api", good); err == nil || !strings.Contains(err.Error(), "ContextTimeoutEnabled") {
		t.Errorf("New(a client without ContextTimeoutEnabled) err = %v, want one naming the option", err)
	}
}

// TestRedisDumpRevealsNothing: every key, value and message that Redis sees
// is searched for tokens, their digests, subjects, token IDs, claims and the
// secret.
func TestRedisDumpRevealsNothing(t *testing.T) {
	as, keyJSON, rs := setup(t)
	ctx := context.Background()
	const namespace = "namespace-of-the-api"
	a := newReplica(t, as, keyJSON, rs, namespace)
	b := newReplica(t, as, keyJSON, rs, namespace)
	b.listen(t)
	rdb := rs.client(t)
	sub := spy(t, rdb)
	tok := as.Mint(fakeas.Token{Subject: "subject-4711", Username: "alice-the-user", OrgID: "org-0815", ClientID: "svc-client-99",
		Audience: []string{project}, Roles: map[string]map[string]string{"role-top-secret": {"org-0815": "acme-domain.example"}},
		Extra: map[string]any{"jti": "jti-top-secret-42"}})
	other := as.Mint(fakeas.Token{Subject: "subject-5555", Audience: []string{project}})
	if a.get(tok) != 200 || a.get(other) != 200 {
		t.Fatal("setup: tokens not accepted")
	}
	a.client.InvalidateSubject("subject-9999")
	a.client.InvalidateTokenID("jti-revoked-77")
	a.client.Invalidate(other)
	var dump bytes.Buffer
	for _, m := range messages(t, sub, 3) {
		dump.WriteString(m.Channel)
		dump.WriteString(m.Payload)
	}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil || len(keys) < 4 { // an entry, a tombstone, a subject and a token ID record
		t.Fatalf("keys %v, %v", keys, err)
	}
	for _, k := range keys {
		v, _ := rdb.Get(ctx, k).Bytes()
		dump.WriteString(k)
		dump.Write(v)
	}
	d, o := sha256.Sum256([]byte(tok)), sha256.Sum256([]byte(other))
	for _, secret := range []string{tok, other, "subject-4711", "subject-5555", "subject-9999", "jti-top-secret-42", "jti-revoked-77",
		"alice-the-user", "org-0815", "svc-client-99", "role-top-secret", "acme-domain", project, "active", namespace,
		string(d[:]), string(o[:]), hex.EncodeToString(d[:]), hex.EncodeToString(o[:]),
		hex.EncodeToString(oldDigest(namespace, 't', tok)), hex.EncodeToString(oldDigest(namespace, 's', "subject-9999")),
		string(testSecret), hex.EncodeToString(testSecret)} {
		if bytes.Contains(dump.Bytes(), []byte(secret)) {
			t.Errorf("what Redis holds or carries contains %q", secret)
		}
	}
}

// TestRotationWithPreviousSecret: during a rotation, replicas still on the
// old secret and replicas on the new one (with the old as previous) share
// entries one way and invalidations both ways.
func TestRotationWithPreviousSecret(t *testing.T) {
	as, keyJSON, rs := setup(t)
	oldSecret, newSecret := []byte("the-old-secret-being-rotated-out-0123"), []byte("the-new-secret-being-rotated-in-01234")
	o := newReplicaOn(t, as, keyJSON, rs.client(t), "api", oldSecret, nil)
	o.listen(t)
	n := newReplicaOn(t, as, keyJSON, rs.client(t), "api", newSecret, []rediscache.Option{rediscache.WithPreviousSecret(oldSecret)})
	n.listen(t)
	after := newReplicaOn(t, as, keyJSON, rs.client(t), "api", newSecret, nil)

	alice := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
	bob := as.Mint(fakeas.Token{Subject: "bob", Audience: []string{project}})
	if o.get(alice) != 200 {
		t.Fatal("setup")
	}
	calls := as.Calls()
	if got := n.get(alice); got != 200 || as.Calls() != calls {
		t.Errorf("a rotating replica, on an entry under the previous secret: %d after %d introspections, want 200 from Redis", got, as.Calls()-calls)
	}
	if n.get(bob) != 200 {
		t.Fatal("setup")
	}
	calls = as.Calls()
	if got := after.get(bob); got != 200 || as.Calls() != calls {
		t.Errorf("a replica on the new secret, on an entry a rotating one wrote: %d after %d introspections", got, as.Calls()-calls)
	}
	if got := o.get(bob); got != 200 || as.Calls() != calls+1 {
		t.Errorf("a replica on the old secret, on an entry under the new one: %d after %d introspections, want a miss", got, as.Calls()-calls)
	}
	as.Revoke(alice)
	as.Revoke(bob)
	n.client.InvalidateSubject("alice")
	o.client.Invalidate(bob)
	waitFor(t, "the old replica hears the rotating one", func() bool { return o.get(alice) == 401 })
	waitFor(t, "the rotating replica hears the old one", func() bool { return n.get(bob) == 401 })
	late := newReplicaOn(t, as, keyJSON, rs.client(t), "api", oldSecret, nil)
	if got := late.get(alice); got != 401 {
		t.Errorf("a new replica on the old secret took an entry of a subject the rotating one invalidated: %d", got)
	}
}

// TestOldMessageIsRejected: a message replayed after the revocation TTL, when
// nothing it invalidated can still be cached, is ignored and counted.
func TestOldMessageIsRejected(t *testing.T) {
	as, keyJSON, rs := setup(t)
	ctx := context.Background()
	short := []rediscache.Option{rediscache.WithRevocationTTL(300 * time.Millisecond)}
	a := newReplicaOn(t, as, keyJSON, rs.client(t), "api", testSecret, short)
	b := newReplicaOn(t, as, keyJSON, rs.client(t), "api", testSecret, short)
	b.listen(t)
	rdb := rs.client(t)
	sub := spy(t, rdb)
	a.client.InvalidateSubject("alice")
	m := messages(t, sub, 1)[0]
	time.Sleep(400 * time.Millisecond)
	if b.shared.Rejected() != 0 {
		t.Fatalf("Rejected() = %d before the replay, want 0", b.shared.Rejected())
	}
	if err := rdb.Publish(ctx, m.Channel, m.Payload).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replay counted", func() bool { return b.shared.Rejected() == 1 })
}

// TestHugeValuesInRedisAreReadOnlyInPart: someone who can write to Redis
// grows entries and tombstones to 32 MiB each, with one small SETRANGE
// apiece. A lookup reads at most what a real entry can be (a little over
// introspect.MaxResponseSize) of each, so that it allocates about a
// megabyte, not 32; the grown entries are misses (they no longer open), and
// a grown tombstone counts as an invalidation.
func TestHugeValuesInRedisAreReadOnlyInPart(t *testing.T) {
	as, keyJSON, rs := setup(t)
	a := newReplica(t, as, keyJSON, rs, "api")
	const n = 4
	toks := make([]string, n)
	for i := range toks {
		toks[i] = as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
		if a.get(toks[i]) != 200 {
			t.Fatal("setup: token not accepted")
		}
	}
	ctx := context.Background()
	attacker := rs.client(t)
	keys, err := attacker.Keys(ctx, rediscache.DefaultPrefix+"e:*").Result()
	if err != nil || len(keys) != n {
		t.Fatalf("entry keys: %d, %v", len(keys), err)
	}
	const size = 32 << 20
	for _, k := range keys {
		if err := attacker.SetRange(ctx, k, size-1, "x").Err(); err != nil {
			t.Fatal(err)
		}
	}
	b := newReplica(t, as, keyJSON, rs, "api")
	calls := as.Calls()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, tok := range toks {
		if got := b.get(tok); got != 200 {
			t.Errorf("a token whose entry was grown: %d, want 200 from the server", got)
		}
	}
	runtime.ReadMemStats(&after)
	if got := as.Calls() - calls; got != n {
		t.Errorf("%d introspections for %d grown entries, want each asked of the server", got, n)
	}
	if mb := (after.TotalAlloc - before.TotalAlloc) >> 20; mb > 4*n {
		t.Errorf("%d lookups of 32 MiB values allocated %d MiB, want at most about a megabyte each", n, mb)
	}
}

// TestLargestBodiesAreShared: an entry with a body of the largest size the
// Client accepts is stored and read back whole, also when the body is full
// of the characters encoding/json would escape for HTML (<, >, &: six bytes
// each), which must not push it past what a lookup reads.
func TestLargestBodiesAreShared(t *testing.T) {
	rs := startRedis(t)
	// A megabyte a lookup, decoded, can take longer than the 50 ms default
	// on a loaded machine under the race detector: this test is about size.
	c, err := rediscache.New(rs.client(t), "api", testSecret, quiet, rediscache.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, fill := range map[string]string{"plain": "x", "html characters": "<&>"} {
		head := fmt.Sprintf(`{"active":true,"sub":"alice","exp":%d,"note":"`, time.Now().Add(time.Hour).Unix())
		pad := introspect.MaxResponseSize - len(head) - len(`"}`)
		body := head + strings.Repeat(fill, pad/len(fill)+1)[:pad] + `"}`
		if len(body) != introspect.MaxResponseSize {
			t.Fatalf("body of %d bytes", len(body))
		}
		tok := "tok-" + name
		now := time.Now()
		e := introspect.SharedEntry{Body: []byte(body), Filled: now, Fresh: now.Add(time.Minute), Expires: now.Add(time.Minute)}
		if err := c.Store(ctx, tok, e); err != nil {
			t.Fatalf("%s: Store: %v", name, err)
		}
		got, ok, err := c.Lookup(ctx, tok)
		if err != nil || !ok || string(got.Body) != body {
			t.Errorf("%s: Lookup = %d bytes, %v, %v; want the %d-byte body back", name, len(got.Body), ok, err, len(body))
		}
	}
}
