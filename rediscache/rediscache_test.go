package rediscache_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/events"
	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
	"github.com/tokenguard/tokenguard/rediscache"
)

const project = "311111111111111111"

// testSecret is the replicas' shared secret in these tests.
var testSecret = []byte("tokenguard-test-secret-0123456789abcdef")

var quiet = rediscache.WithLogger(slog.New(slog.DiscardHandler))

// replica is one instance of the API: its own introspection client and LRU,
// sharing Redis with the others.
type replica struct {
	client *introspect.Client
	shared *rediscache.Cache
	h      http.Handler
}

func newReplica(t testing.TB, as *fakeas.Server, keyJSON []byte, rs *redisServer, namespace string) *replica {
	t.Helper()
	return newReplicaOn(t, as, keyJSON, rs.client(t), namespace, testSecret, nil)
}

// newReplicaOn makes a replica on rdb with its own secret, Cache options and
// introspect options.
func newReplicaOn(t testing.TB, as *fakeas.Server, keyJSON []byte, rdb redis.UniversalClient, namespace string, secret []byte, copts []rediscache.Option, iopts ...introspect.Option) *replica {
	t.Helper()
	shared, err := rediscache.New(rdb, namespace, secret, append([]rediscache.Option{quiet}, copts...)...)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := clientauth.ParseKey(keyJSON)
	auth, _ := key.PrivateKeyJWT(as.Issuer)
	client, err := introspect.New(as.Issuer+fakeas.IntrospectPath, auth, append([]introspect.Option{introspect.WithSharedCache(shared), introspect.WithRetries(0, 0)}, iopts...)...)
	if err != nil {
		t.Fatal(err)
	}
	mw, _ := middleware.New(client, project, middleware.WithLogger(slog.New(slog.DiscardHandler)))
	return &replica{client: client, shared: shared, h: mw.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))}
}

// listen runs the replica's Listen until the test ends, and waits until it
// has subscribed.
func (r *replica) listen(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.shared.Listen(ctx, r.client) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Listen() = %v after cancel, want context.Canceled", err)
		}
	})
	waitFor(t, "Listen subscribes", r.shared.Listening)
}

func (r *replica) get(token string) int {
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	r.h.ServeHTTP(rec, req)
	return rec.Code
}

func setup(t *testing.T) (*fakeas.Server, []byte, *redisServer) {
	t.Helper()
	as := fakeas.Start()
	t.Cleanup(as.Close)
	keyJSON, _ := as.NewApp(project)
	return as, keyJSON, startRedis(t)
}

func TestReplicasShareDecisions(t *testing.T) {
	as, keyJSON, rs := setup(t)
	a, b := newReplica(t, as, keyJSON, rs, "api"), newReplica(t, as, keyJSON, rs, "api")
	tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
	if got := a.get(tok); got != 200 {
		t.Fatalf("replica A: %d", got)
	}
	calls := as.Calls()
	if got := b.get(tok); got != 200 || as.Calls() != calls {
		t.Errorf("replica B: %d after %d introspections; want 200 from Redis with none", got, as.Calls()-calls)
	}
	_ = a.get("junk-token") // inactive results are shared too
	calls = as.Calls()
	if got := b.get("junk-token"); got != 401 || as.Calls() != calls {
		t.Errorf("inactive token on B: %d after %d introspections", got, as.Calls()-calls)
	}
	other := newReplica(t, as, keyJSON, rs, "another API")
	calls = as.Calls()
	if got := other.get(tok); got != 200 || as.Calls() != calls+1 {
		t.Errorf("another namespace made %d introspections, want 1: namespaces never share", as.Calls()-calls)
	}
	stranger := newReplicaOn(t, as, keyJSON, rs.client(t), "api", []byte("another-secret-of-at-least-32-bytes!"), nil)
	calls = as.Calls()
	if got := stranger.get(tok); got != 200 || as.Calls() != calls+1 {
		t.Errorf("another secret made %d introspections, want 1: secrets never share", as.Calls()-calls)
	}
}

func TestRedisDownChangesNothingForClients(t *testing.T) {
	as, keyJSON, rs := setup(t)
	a := newReplica(t, as, keyJSON, rs, "api")
	tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
	if got := a.get(tok); got != 200 {
		t.Fatal(got)
	}
	rs.stop()
	fresh := as.Mint(fakeas.Token{Subject: "bob", Audience: []string{project}})
	for _, tk := range []string{tok, fresh, "junk"} {
		want := 200
		if tk == "junk" {
			want = 401
		}
		if got := a.get(tk); got != want {
			t.Errorf("with Redis stopped: %d, want %d", got, want)
		}
	}
	if a.shared.Errors() == 0 {
		t.Errorf("Errors() = 0 with Redis stopped: failures must be counted")
	}
}

func TestInvalidationsReachEveryReplica(t *testing.T) {
	as, keyJSON, rs := setup(t)
	a, b := newReplica(t, as, keyJSON, rs, "api"), newReplica(t, as, keyJSON, rs, "api")
	b.listen(t)

	alice := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
	carol := as.Mint(fakeas.Token{Subject: "carol", Audience: []string{project}})
	dave := as.Mint(fakeas.Token{Subject: "dave", Audience: []string{project}, Extra: map[string]any{"jti": "dave-token-1"}})
	for _, tok := range []string{alice, carol, dave} {
		if a.get(tok) != 200 || b.get(tok) != 200 {
			t.Fatal("setup: tokens not accepted")
		}
	}
	as.Revoke(alice) // the user is locked at the authorization server
	as.Revoke(carol)
	as.Revoke(dave)
	a.client.InvalidateSubject("alice") // reaches B through Redis
	a.client.Invalidate(carol)
	a.client.InvalidateTokenID("dave-token-1")
	waitFor(t, "B refuses alice after InvalidateSubject on A", func() bool { return b.get(alice) == 401 })
	waitFor(t, "B refuses carol's token after Invalidate on A", func() bool { return b.get(carol) == 401 })
	waitFor(t, "B refuses dave's token after InvalidateTokenID on A", func() bool { return b.get(dave) == 401 })
	if a.get(alice) != 401 || a.get(carol) != 401 || a.get(dave) != 401 {
		t.Errorf("A still accepts invalidated tokens")
	}
	// A replica that starts later, with an empty LRU, must not take the old
	// entries from Redis either.
	late := newReplica(t, as, keyJSON, rs, "api")
	for name, tok := range map[string]string{"an invalidated subject's token": alice, "an invalidated token": carol, "an invalidated token ID": dave} {
		if got := late.get(tok); got != 401 {
			t.Errorf("a new replica accepted %s: %d", name, got)
		}
	}
}

func TestTamperedEntryIsAMiss(t *testing.T) {
	as, keyJSON, rs := setup(t)
	a := newReplica(t, as, keyJSON, rs, "api")
	tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
	_ = a.get(tok)
	rdb := rs.client(t)
	keys, _ := rdb.Keys(context.Background(), "tokenguard:e:*").Result()
	for _, k := range keys {
		v, _ := rdb.Get(context.Background(), k).Bytes()
		v[len(v)-1] ^= 1
		rdb.Set(context.Background(), k, v, time.Minute)
		ttl := rdb.TTL(context.Background(), k).Val()
		if ttl <= 0 || ttl > introspect.DefaultMaxTTL {
			t.Errorf("entry TTL %v, want within the max TTL", ttl)
		}
	}
	b := newReplica(t, as, keyJSON, rs, "api")
	calls := as.Calls()
	if got := b.get(tok); got != 200 || as.Calls() != calls+1 {
		t.Errorf("tampered entry: %d after %d introspections; want a fresh introspection", got, as.Calls()-calls)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Errorf("%s: not within 3 s", what)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRedisFullOrSlowChangesNothingForClients(t *testing.T) {
	as, keyJSON, rs := setup(t)
	a := newReplica(t, as, keyJSON, rs, "api")
	admin := rs.client(t)
	ctx := context.Background()
	// Full: every write is refused with OOM.
	if err := admin.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	full := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
	if got := a.get(full); got != 200 {
		t.Errorf("with Redis full: %d, want 200", got)
	}
	if a.shared.Errors() == 0 {
		t.Errorf("a refused write was not counted")
	}
	_ = admin.ConfigSet(ctx, "maxmemory", "0").Err()
	// Slow: Redis blocks for longer than the 50 ms timeout.
	slept := make(chan struct{})
	go func() { defer close(slept); admin.Do(ctx, "DEBUG", "SLEEP", "0.5") }()
	defer func() { <-slept }()
	time.Sleep(50 * time.Millisecond)
	slow := as.Mint(fakeas.Token{Subject: "bob", Audience: []string{project}})
	start := time.Now()
	if got := a.get(slow); got != 200 {
		t.Errorf("with Redis slow: %d, want 200", got)
	}
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Errorf("with Redis slow the request took %v: Redis calls must time out fast", d)
	}
}

func TestSignedEventOnOneReplicaRevokesOnAll(t *testing.T) {
	as, keyJSON, rs := setup(t)
	a, b := newReplica(t, as, keyJSON, rs, "api"), newReplica(t, as, keyJSON, rs, "api")
	b.listen(t)

	tok := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
	if a.get(tok) != 200 || b.get(tok) != 200 {
		t.Fatal("setup")
	}
	as.Revoke(tok)
	hook, err := events.NewHandler("k", a.client, events.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	post := func(sig string) int {
		body := `{"aggregateID":"alice","aggregateType":"user","event_type":"user.locked","event_payload":{}}`
		req := httptest.NewRequest("POST", "/events", strings.NewReader(body))
		req.Header.Set("ZITADEL-Signature", sig)
		if sig == "" {
			req.Header.Set("ZITADEL-Signature", events.Sign([]byte(body), time.Now(), []byte("k")))
		}
		rec := httptest.NewRecorder()
		hook.ServeHTTP(rec, req)
		return rec.Code
	}
	if got := post("t=1,v1=00"); got != 401 {
		t.Fatalf("badly signed event: %d", got)
	}
	time.Sleep(100 * time.Millisecond)
	if b.get(tok) != 200 {
		t.Errorf("a badly signed event changed B's decision")
	}
	if got := post(""); got != 200 {
		t.Fatalf("signed event: %d", got)
	}
	waitFor(t, "B refuses alice after a signed event reached A", func() bool { return b.get(tok) == 401 })
}

func TestSwappedEntryIsAMiss(t *testing.T) {
	as, keyJSON, rs := setup(t)
	a := newReplica(t, as, keyJSON, rs, "api")
	alice := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
	bob := as.Mint(fakeas.Token{Subject: "bob", Audience: []string{project}})
	_, _ = a.get(alice), a.get(bob)
	rdb := rs.client(t)
	keys, _ := rdb.Keys(context.Background(), "tokenguard:e:*").Result()
	if len(keys) != 2 {
		t.Fatalf("%d entries, want 2", len(keys))
	}
	v0, _ := rdb.Get(context.Background(), keys[0]).Bytes()
	v1, _ := rdb.Get(context.Background(), keys[1]).Bytes()
	rdb.Set(context.Background(), keys[0], v1, time.Minute) // each entry now holds the other's value
	rdb.Set(context.Background(), keys[1], v0, time.Minute)
	b := newReplica(t, as, keyJSON, rs, "api")
	calls := as.Calls()
	if b.get(alice) != 200 || b.get(bob) != 200 || as.Calls() != calls+2 {
		t.Errorf("swapped entries: %d introspections, want 2 (both misses)", as.Calls()-calls)
	}
}
