// Package clientauth authenticates an OAuth 2.0 client to an authorization
// server: with a private-key JWT client assertion (RFC 7523 §2.2, the
// "private_key_jwt" method of OpenID Connect Core §9) signed by a key from a
// ZITADEL key file, or with client_secret_basic (RFC 6749 §2.3.1).
//
// https://www.rfc-editor.org/rfc/rfc7523#section-2.2
//
// A ZITADEL key file is the JSON that the console hands out for an API or
// application key ({"type":"application","keyId","key","appId","clientId"})
// or for a service user's key ({"type":"serviceaccount","keyId","key","userId"}):
//
//	key, err := clientauth.LoadKey("api-key.json")
//	auth, err := key.PrivateKeyJWT(issuer) // issuer exactly as discovered
//	// auth.AuthenticateClient(form, header) adds client_assertion_type and
//	// client_assertion to every introspection request.
//
// # Caching
//
// A [PrivateKeyJWT] reuses one assertion (unique jti, 1 minute lifetime by
// default) until a fifth of its lifetime is left, which takes RSA signing
// off the introspection path; at most one signature is in progress at a
// time. ZITADEL accepts a reused assertion. A server that refuses one gets,
// through package introspect, one immediate retry with a fresh assertion,
// and from then on a fresh assertion per call; [WithFreshAssertions] asks
// for that from the start. [JWTBearer] shares one access token among all the
// token sources and clients it returns, until [JWTBearer.ExpiryDelta]
// before it expires.
//
// # Security
//
// Private keys come in as [crypto.Signer], so a key held by a KMS or HSM works.
// Errors name the file and the field at fault and MUST NOT contain key
// material. A reused assertion that is captured can be replayed to
// authenticate as this client until it expires (at most [WithLifetime]
// after it was signed, 1 minute by default); it goes only to the
// authorization server, which MUST be reached over TLS outside development.
// The package logs one line, at Warn and without key material, when it
// switches to fresh assertions; nothing else.
package clientauth
