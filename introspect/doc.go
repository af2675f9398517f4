// Package introspect is an OAuth 2.0 Token Introspection client (RFC 7662)
// with an optional result cache, made for resource servers that accept
// opaque access tokens from ZITADEL or any RFC 7662 authorization server.
//
// https://www.rfc-editor.org/rfc/rfc7662
//
//	doc, err := introspect.Discover(ctx, issuer, nil)
//	auth, err := key.PrivateKeyJWT(doc.Issuer) // see package clientauth
//	client, err := introspect.New(doc.IntrospectionEndpoint, auth)
//	resp, err := client.Introspect(ctx, token)
//	switch {
//	case errors.Is(err, introspect.ErrInactive):    // refuse the token: 401
//	case errors.Is(err, introspect.ErrUnavailable): // server down: 503, retry later
//	case errors.Is(err, introspect.ErrClientAuth):  // our key is wrong: fix configuration
//	}
//
// Each call POSTs token and token_type_hint=access_token as a form, with
// Accept: application/json, and reads at most [MaxResponseSize] bytes of the
// answer. The response keeps every claim; ZITADEL's role and organization
// claims are also decoded into typed fields.
//
// # Caching
//
// By default a [Client] caches up to [DefaultCacheSize] answers, keyed by
// SHA-256 of the token (the token itself is never stored). An active answer
// lives until the earlier of the token's exp and [DefaultMaxTTL] (5
// minutes); an answer without exp lives for the max TTL; an inactive answer
// lives [DefaultNegativeTTL] (30 s). Errors are never cached. Concurrent
// calls for a token that is not cached share one request to the server
// (golang.org/x/sync/singleflight), so a hot token costs one introspection
// however many requests carry it.
//
// The max TTL is the staleness bound: a token revoked at the server, or a
// role removed, can be accepted from the cache for up to that long. Use
// [Client.Invalidate] to drop a token at once.
//
// # Security
//
// Tokens are never stored: cache keys are SHA-256 digests. Errors never
// contain the token. The endpoint SHOULD be https; plain http is for
// loopback development servers only.
package introspect
