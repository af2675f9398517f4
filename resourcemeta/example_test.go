package resourcemeta_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/tokenguard/tokenguard/resourcemeta"
)

func Example() {
	m := resourcemeta.ForZITADEL("https://api.example.com", "https://my-instance.zitadel.cloud", "311111111111111111")
	m.ResourceName = "Shop API"
	meta, err := resourcemeta.New(m)
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+meta.Path(), meta) // public: no middleware in front
	// Pass meta.URL() to the middleware so that 401 challenges carry
	// resource_metadata="..." (RFC 9728 §5.1).
	fmt.Println(meta.URL())

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/oauth-protected-resource", nil))
	body, _ := io.ReadAll(rec.Body)
	fmt.Print(string(body))
	// Output:
	// https://api.example.com/.well-known/oauth-protected-resource
	// {"resource":"https://api.example.com","authorization_servers":["https://my-instance.zitadel.cloud"],"scopes_supported":["openid","urn:zitadel:iam:org:project:id:311111111111111111:aud"],"bearer_methods_supported":["header"],"resource_name":"Shop API"}
}
