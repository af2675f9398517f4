package main

import (
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rs"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// The baselines of `tokenguard bench`: what a ZITADEL user gets without
// tokenguard. Both use zitadel/oidc's resource server client (rs), which
// signs a fresh client assertion for every call, as ZITADEL's Go SDK does.

// sdkBaseline introspects on every request, as ZITADEL's SDK middleware does
// by default.
func sdkBaseline(server rs.ResourceServer, projectID string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		resp, err := rs.Introspect[*oidc.IntrospectionResponse](r.Context(), server, token)
		if err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		if !resp.Active || !slices.Contains(resp.Audience, projectID) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// goCacheBaseline is the best a ZITADEL user assembles today: the same
// introspection behind a go-cache style map keyed by the raw token, one fixed
// TTL for all entries, inactive results cached too, and no coalescing of
// concurrent misses.
type goCacheBaseline struct {
	server    rs.ResourceServer
	projectID string
	ttl       time.Duration

	mu    sync.RWMutex // guards items
	items map[string]goCacheItem
}

type goCacheItem struct {
	resp    *oidc.IntrospectionResponse
	expires int64
}

func newGoCacheBaseline(server rs.ResourceServer, projectID string) *goCacheBaseline {
	return &goCacheBaseline{server: server, projectID: projectID, ttl: 60 * time.Second, items: map[string]goCacheItem{}}
}

func (g *goCacheBaseline) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		now := time.Now().UnixNano()
		g.mu.RLock()
		item, found := g.items[token]
		g.mu.RUnlock()
		if !found || now >= item.expires {
			resp, err := rs.Introspect[*oidc.IntrospectionResponse](r.Context(), g.server, token)
			if err != nil {
				http.Error(w, "unavailable", http.StatusServiceUnavailable)
				return
			}
			item = goCacheItem{resp: resp, expires: now + int64(g.ttl)}
			g.mu.Lock()
			g.items[token] = item
			g.mu.Unlock()
		}
		if !item.resp.Active || !slices.Contains(item.resp.Audience, g.projectID) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !equalFold(h[:7], "Bearer ") {
		return "", false
	}
	return h[7:], true
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}
