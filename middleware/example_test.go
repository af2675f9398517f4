package middleware_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
)

func Example() {
	as := fakeas.Start() // stands in for ZITADEL
	defer as.Close()
	keyJSON, _ := as.NewApp("123")

	key, _ := clientauth.ParseKey(keyJSON)
	auth, _ := key.PrivateKeyJWT(as.Issuer)
	client, _ := introspect.New(as.Issuer+fakeas.IntrospectPath, auth)
	mw, err := middleware.New(client, "123", middleware.WithProjectID("123"))
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/api/admin", mw.Require(middleware.Role("admin"))(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			claims, _ := middleware.ClaimsFromContext(r.Context())
			fmt.Fprintf(w, "hello %s", claims.Subject)
		})))

	for _, roles := range []map[string]map[string]string{{"admin": {"org": "acme"}}, nil} {
		token := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{"123"}, Roles: roles})
		req := httptest.NewRequest("GET", "/api/admin", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		fmt.Println(rec.Code, rec.Body.String())
	}
	// Output:
	// 200 hello alice
	// 403 {"error":"insufficient_scope","error_description":"requires project role \"admin\""}
}

func ExampleNewContext() {
	handler := func(w http.ResponseWriter, r *http.Request) {
		claims, ok := middleware.ClaimsFromContext(r.Context())
		fmt.Fprintln(w, claims.Subject, ok, claims.Roles.Has("admin"), claims.HasScope("write"))
	}
	// Test a handler without a middleware or an authorization server.
	req := httptest.NewRequest("GET", "/", nil)
	req = req.WithContext(middleware.NewContext(req.Context(), &middleware.Claims{Subject: "alice",
		Roles: introspect.NewRoles(introspect.RoleGrant{Role: "admin", OrgID: "org-1"})}))
	rec := httptest.NewRecorder()
	handler(rec, req)

	// For scopes and other claims, decode what the server would answer.
	resp, _ := introspect.Decode([]byte(`{"active":true,"sub":"bob","scope":"read write"}`))
	req = req.WithContext(middleware.NewContext(req.Context(), middleware.NewClaims(resp, "")))
	handler(rec, req)
	fmt.Print(rec.Body.String())
	// Output:
	// alice true true false
	// bob true false true
}
