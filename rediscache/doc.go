// Package rediscache is a second-level introspection cache on Redis, shared by
// an API's replicas, with invalidations that every listening replica applies.
//
// Each replica keeps its in-process LRU in front; Redis is asked only on an
// LRU miss, inside the same singleflight as the introspection call, so a
// token costs one introspection across all replicas per cache lifetime:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
//	secret := ... // at least 32 random bytes, the same for every replica of the API, never in Redis
//	shared, err := rediscache.New(rdb, issuer+" "+apiClientID, secret)
//	guard, err := tokenguard.New(ctx, tokenguard.Config{...,
//		IntrospectOptions: []introspect.Option{introspect.WithSharedCache(shared)}})
//	go shared.Listen(ctx, guard.Client()) // apply other replicas' invalidations
//	guard.InvalidateSubject(userID)       // every listening replica drops the user's cached tokens
//
// It is its own module, so that APIs without Redis do not depend on go-redis.
//
// # Caching
//
// An entry lives in Redis until the earlier of its Expires (the token's exp
// or the max TTL of the replica that filled it, plus any stale-if-error
// window) and the revocation TTL; inactive results for the negative TTL,
// errors never. A replica reading an entry applies its own max TTL to it
// (package introspect does). Every Redis call has a short timeout (default
// 50 ms, which go-redis honours only with ContextTimeoutEnabled); when Redis
// is down, slow or full, requests carry on with the LRU and introspection,
// and the failure is logged and counted ([Cache.Errors]).
//
// # Security
//
// Whoever can read or write Redis, or publish on it, but does not hold the
// secret learns and forges nothing:
//
//   - Key names are HMAC-SHA256 of the token (or subject, or jti) under a key
//     derived from the secret and the namespace with HKDF-SHA256. Without the
//     secret nobody can compute the key of a token, nor tell which token,
//     user or token ID a key belongs to.
//   - Values are sealed with AES-256-GCM under a key that is the HMAC of the
//     token under another key derived from the secret, with the Redis key as
//     associated data. A value sealed without the secret, or moved to another
//     key, is a miss, so an entry cannot be forged for a token one picks.
//   - Invalidation messages are sealed with AES-256-GCM under a key derived
//     from the secret, with the channel as associated data; they carry the
//     token's cache key, the subject or the jti only inside the ciphertext,
//     padded to a multiple of 64 bytes. The channel is named after an HMAC
//     of the namespace under the secret, so APIs that share a Redis never
//     hear each other. A
//     message that does not open, or is older than the revocation TTL, is
//     ignored and counted ([Cache.Rejected]). A replayed message repeats an
//     invalidation at its original time: it refuses only answers obtained
//     before that time again.
//   - [Cache.InvalidateShared] leaves a tombstone, the invalidation's time,
//     kept for the revocation TTL; entries never outlive it, and an entry
//     filled at or before it is a miss, so an old ciphertext put back into
//     Redis is refused by every replica. Subjects and token IDs are recorded
//     the same way.
//
// Someone who can write to Redis can still delete entries and records, or
// roll Redis back to an earlier state: entries then come back that were true
// when filled, and each replica caps them at its own max TTL after they were
// filled; a replica that heard the invalidation refuses them regardless.
// Invalidation compares the entry's Filled time with the invalidation's time,
// each taken on its replica's clock: keep the replicas' clocks in sync (NTP).
//
// # Invalidation
//
// [Cache.Listen] applies each message at once, when it arrives, and purges
// the local cache whenever it (re)subscribes or finds its subscription lost;
// see its documentation for what that guarantees. If Redis cannot be reached
// from the replica that invalidates, the other replicas are not told: the
// failure is logged and counted, their cached answers live out their max
// TTL, and they refuse the entries in Redis only if the record could be
// written.
//
// # Rotating the secret
//
// To rotate, deploy every replica with the new secret and
// [WithPreviousSecret](old); once every replica runs so, deploy them again
// without it. In between, a replica reads entries under either secret,
// writes under the new one, and records, publishes and hears invalidations
// under both, so old and new replicas share decisions and invalidations
// throughout. A secret that leaked must not be kept as the previous one:
// deploy the new secret alone. Entries under the old one are then simply
// misses, and, until the rollout ends, replicas on different secrets do not
// hear each other's invalidations; finish it quickly, or lower the max TTL
// for its duration. Entries written by versions of this package before the
// secret existed are misses too.
package rediscache
