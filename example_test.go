package tokenguard_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/middleware"
)

func Example() {
	as := fakeas.Start() // stands in for ZITADEL
	defer as.Close()
	keyJSON, _ := as.NewApp("123")
	dir, _ := os.MkdirTemp("", "tokenguard")
	defer os.RemoveAll(dir)
	keyFile := filepath.Join(dir, "api-key.json")
	_ = os.WriteFile(keyFile, keyJSON, 0o600)

	guard, err := tokenguard.New(context.Background(), tokenguard.Config{
		Issuer:    as.Issuer,
		KeyFile:   keyFile,
		ProjectID: "123",
	})
	if err != nil {
		log.Fatal(err)
	}
	me := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := middleware.ClaimsFromContext(r.Context())
		fmt.Fprintf(w, "hello %s", claims.Subject)
	})
	mux := http.NewServeMux()
	mux.Handle("/api/me", guard.Wrap(me))
	mux.Handle("/api/admin", guard.Require(middleware.Role("admin"))(me))

	token := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{"123"}})
	for _, path := range []string{"/api/me", "/api/admin"} {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		fmt.Println(path, rec.Code)
	}
	// Output:
	// /api/me 200
	// /api/admin 403
}
