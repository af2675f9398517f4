package introspect_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/introspect"
)

func ExampleClient_Introspect() {
	as := fakeas.Start() // stands in for ZITADEL
	defer as.Close()
	keyJSON, _ := as.NewApp("123")
	token := as.Mint(fakeas.Token{Subject: "user-1", Audience: []string{"123"}})

	ctx := context.Background()
	doc, err := introspect.Discover(ctx, as.Issuer, nil)
	if err != nil {
		log.Fatal(err)
	}
	key, err := clientauth.ParseKey(keyJSON) // clientauth.LoadKey("api-key.json") for a file
	if err != nil {
		log.Fatal(err)
	}
	auth, err := key.PrivateKeyJWT(doc.Issuer)
	if err != nil {
		log.Fatal(err)
	}
	client, err := introspect.New(doc.IntrospectionEndpoint, auth)
	if err != nil {
		log.Fatal(err)
	}

	resp, err := client.Introspect(ctx, token)
	fmt.Println(resp.Subject, resp.Audience(), err)

	_, err = client.Introspect(ctx, "revoked-or-unknown")
	fmt.Println(errors.Is(err, introspect.ErrInactive))
	// Output:
	// user-1 [123] <nil>
	// true
}
