// Package rediscache is a second-level introspection cache on Redis, shared by
// an API's replicas, with invalidations that reach every replica at once.
//
// Each replica keeps its in-process LRU in front; Redis is asked only on an
// LRU miss, inside the same singleflight as the introspection call, so a
// token costs one introspection across all replicas per cache lifetime:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	shared, err := rediscache.New(rdb, issuer+" "+apiClientID)
//	guard, err := tokenguard.New(ctx, tokenguard.Config{...,
//		IntrospectOptions: []introspect.Option{introspect.WithSharedCache(shared)}})
//	go shared.Listen(ctx, guard.Client()) // apply other replicas' invalidations
//	guard.InvalidateSubject(userID)       // every replica refuses the user's cached tokens
//
// It is its own module, so that APIs without Redis do not depend on go-redis.
//
// # Caching
//
// An entry lives in Redis as long as in the LRU: until the earlier of the
// token's exp and the max TTL (the Redis key's TTL), inactive results for the
// negative TTL, errors never. Every Redis call has a short timeout (default
// 50 ms); when Redis is down, slow or full, requests carry on with the LRU and
// introspection, and the failure is logged and counted ([Cache.Errors]).
//
// # Security
//
// Nothing in Redis is readable without the token: keys are SHA-256 of the
// namespace and the token (or subject), and values are sealed with
// AES-256-GCM under a key derived from the token with HKDF-SHA256 and bound
// to their Redis key. A dump of Redis reveals neither tokens nor claims, and
// an entry is useless without the token. Invalidation messages carry cache
// keys, never tokens; subject invalidations carry the subject ID.
package rediscache
