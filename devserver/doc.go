// Package devserver is an embedded, ZITADEL-like OpenID Provider for
// development and tests, built on github.com/zitadel/oidc/v3/pkg/op (the
// framework ZITADEL itself is built on) with an in-memory storage.
//
// It serves what an API protected by tokenguard and its clients depend on,
// at ZITADEL's paths: discovery, /oauth/v2/keys, /oauth/v2/token (the
// urn:ietf:params:oauth:grant-type:jwt-bearer grant for service users and
// client_credentials), /oauth/v2/introspect (callers authenticated with
// private_key_jwt or client_secret_basic) and /oauth/v2/revoke.
//
// Like ZITADEL, a token's aud holds the project IDs named in
// urn:zitadel:iam:org:project:id:{projectID}:aud scopes, and introspection
// answers active only when aud names the calling API application's project
// or client ID. Without that scope a token is useless to the API: the
// mistake users make most.
//
//	srv, err := devserver.Start()
//	defer srv.Close()
//	project := srv.CreateProject("shop")
//	api, err := srv.CreateAPIApp(project.ID)           // api.KeyJSON for the API
//	user, err := srv.CreateServiceUser("worker", devserver.Grant{ProjectID: project.ID, Roles: []string{"admin"}})
//	token, err := srv.MintToken(user.UserID, devserver.TokenOptions{ProjectIDs: []string{project.ID}})
//
// # Caching
//
// Nothing is cached; all state lives in memory and dies with the server.
// Signing and token encryption keys are generated at start. Refused token
// requests are logged by the op package through [log/slog]'s default logger
// (a Warn with the OpenID error), which helps when a grant fails.
//
// # Security
//
// It is for development and tests only: it listens on 127.0.0.1 unless told
// otherwise, its issuer is plain http (unless [WithTLS]), and it keeps
// private keys in memory. [WithIssuer] gives it a public issuer name, such as
// https://auth.example.com, while it listens on loopback, and like ZITADEL it
// then refuses requests for another host with 404 "instance not found": the
// setup of an API that reaches ZITADEL by an internal address.
// Methods of a [Server] are safe for concurrent use.
package devserver
