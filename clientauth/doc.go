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
// By default every call signs a fresh assertion with a new jti, as RFC 7523
// recommends. [WithReuse] keeps one assertion until shortly before it
// expires, which ZITADEL accepts and which takes RSA signing off the hot
// miss path; the trade-off is that a captured assertion can be replayed
// until its exp, so keep [WithLifetime] short when reusing.
//
// # Security
//
// Private keys come in as [crypto.Signer], so a key held by a KMS or HSM works.
// Errors name the file and the field at fault and MUST NOT contain key
// material; this package never logs.
package clientauth
