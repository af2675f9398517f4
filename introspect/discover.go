package introspect

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// maxDiscoverySize caps the discovery document read by [Discover].
const maxDiscoverySize = 1 << 20

// Discover fetches the OpenID Provider configuration of issuer from
// {issuer}/.well-known/openid-configuration (OpenID Connect Discovery 1.0 §4)
// and checks that it names issuer exactly and has an introspection endpoint.
// The document's issuer is what client assertions must use as their audience.
// A nil httpClient means [http.DefaultClient]; ctx bounds the request.
// Network errors, 5xx and unparseable documents match [ErrUnavailable].
// Redirects are not followed, whatever httpClient's CheckRedirect says (it
// is not changed): a 3xx answer is a [*RedirectError], which matches
// [ErrUnavailable], so that no other host can choose the endpoint.
func Discover(ctx context.Context, issuer string, httpClient *http.Client) (*oidc.DiscoveryConfiguration, error) {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	httpClient = withoutRedirects(httpClient)
	wellKnown := strings.TrimSuffix(issuer, "/") + oidc.DiscoveryEndpoint
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, wellKnown, nil)
	if err != nil {
		return nil, fmt.Errorf("introspect: discovery for issuer %q: %w", issuer, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("introspect: discovery for issuer %q: %w", issuer, unavailable("%w", err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscoverySize+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("introspect: discovery at %s: %w", wellKnown, unavailable("reading: %w", err))
	case len(body) > maxDiscoverySize:
		return nil, fmt.Errorf("introspect: discovery at %s: %w", wellKnown, unavailable("document exceeds %d bytes", maxDiscoverySize))
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return nil, fmt.Errorf("introspect: discovery for issuer %q: %w", issuer, newRedirectError(wellKnown, resp, ""))
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return nil, fmt.Errorf("introspect: discovery at %s: %w", wellKnown, unavailable("status %d", resp.StatusCode))
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("introspect: discovery at %s: status %d; is %q the issuer URL?", wellKnown, resp.StatusCode, issuer)
	}
	var doc oidc.DiscoveryConfiguration
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("introspect: discovery at %s: %w", wellKnown, unavailable("not a discovery document: %w", err))
	}
	if doc.Issuer != issuer {
		return nil, fmt.Errorf("introspect: discovery at %s names issuer %q, want %q exactly (check the trailing slash and scheme)", wellKnown, doc.Issuer, issuer)
	}
	if doc.IntrospectionEndpoint == "" {
		return nil, fmt.Errorf("introspect: discovery at %s has no introspection_endpoint", wellKnown)
	}
	return &doc, nil
}
