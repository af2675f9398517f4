package clientauth

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
)

// ClientSecretBasic authenticates a client with its ID and secret in an HTTP
// Basic Authorization header (RFC 6749 §2.3.1, "client_secret_basic"), each
// form-urlencoded first as the RFC requires. ZITADEL API applications created
// with the "Basic" authentication method use it.
//
// A ClientSecretBasic is safe for concurrent use.
type ClientSecretBasic struct {
	ClientID string
	Secret   string
}

// AuthenticateClient sets the Authorization header. It fails when ClientID or
// Secret is empty.
func (c ClientSecretBasic) AuthenticateClient(_ url.Values, h http.Header) error {
	if c.ClientID == "" || c.Secret == "" {
		return errors.New("clientauth: client_secret_basic needs a client ID and a secret")
	}
	cred := url.QueryEscape(c.ClientID) + ":" + url.QueryEscape(c.Secret)
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(cred)))
	return nil
}
