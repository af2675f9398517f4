// Package resourcemeta serves OAuth 2.0 Protected Resource Metadata
// (RFC 9728, https://www.rfc-editor.org/rfc/rfc9728), so that OAuth and MCP
// clients that meet a 401 from the API can find the authorization server to
// get a token from, and the scopes to ask for.
//
// [ForZITADEL] fills in what a ZITADEL-protected API states: the issuer as
// the authorization server, the project audience scope, bearer tokens in
// the Authorization header. [New] checks the document and returns a
// handler; mount it at [Handler.Path] and tell clients about [Handler.URL]
// in 401 challenges (the resource_metadata parameter of RFC 9728 §5.1):
//
//	meta, err := resourcemeta.New(resourcemeta.ForZITADEL("https://api.example.com", issuer, projectID))
//	mux.Handle(meta.Path(), meta) // GET /.well-known/oauth-protected-resource
//	// meta.URL() is "https://api.example.com/.well-known/oauth-protected-resource"
//
// # Caching
//
// The document is encoded once, by New. Responses carry Cache-Control:
// public, max-age=3600, since the metadata changes only with the API's
// configuration.
//
// # Security
//
// The document is public by design: it names the authorization server and
// scopes, never a secret, and is served to anyone, cross-origin too
// (Access-Control-Allow-Origin: *, without credentials), so that browser
// clients can read it. The resource identifier MUST be https, except on a
// loopback host, and MUST NOT have a query or fragment (RFC 9728 §1.2);
// clients compare the document's resource with the URL they derived it
// from (§3.3), so New refuses identifiers it could not serve exactly. A
// [Handler] is safe for concurrent use.
package resourcemeta
