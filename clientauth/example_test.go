package clientauth_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/devserver"
)

// A service user gets an access token for an API's project and calls the
// API with it: the flow on the client side of tokenguard.
func ExampleJWTBearer() {
	srv, err := devserver.Start() // stands in for ZITADEL
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	project := srv.CreateProject("shop")
	user, _ := srv.CreateServiceUser("worker")

	key, err := clientauth.ParseKey(user.KeyJSON) // clientauth.LoadKey("service-user.json") for a file
	if err != nil {
		log.Fatal(err)
	}
	ts := &clientauth.JWTBearer{Key: key, Issuer: srv.Issuer(), ProjectIDs: []string{project.ID}}
	fmt.Println(ts.Scope() == "openid urn:zitadel:iam:org:project:id:"+project.ID+":aud")

	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println(len(r.Header.Get("Authorization")) > len("Bearer "))
	}))
	defer api.Close()
	resp, err := ts.Client(context.Background()).Get(api.URL)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	// Output:
	// true
	// true
}

func ExampleKey_PrivateKeyJWT() {
	srv, _ := devserver.Start()
	defer srv.Close()
	app, _ := srv.CreateAPIApp(srv.CreateProject("shop").ID)

	key, err := clientauth.ParseKey(app.KeyJSON) // the API application's key file
	if err != nil {
		log.Fatal(err)
	}
	auth, err := key.PrivateKeyJWT(srv.Issuer()) // the issuer exactly as discovered
	if err != nil {
		log.Fatal(err)
	}
	form := map[string][]string{}
	if err := auth.AuthenticateClient(form, nil); err != nil {
		log.Fatal(err)
	}
	fmt.Println(form["client_assertion_type"][0])
	// Output: urn:ietf:params:oauth:client-assertion-type:jwt-bearer
}
