package tokenguard_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/devserver"
)

// At start, before serving: one line per check, and what to fix.
func ExampleCheck() {
	srv, err := devserver.Start() // stands in for ZITADEL
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	project := srv.CreateProject("shop")
	api, _ := srv.CreateAPIApp(project.ID)
	key, _ := clientauth.ParseKey(api.KeyJSON)

	cfg := tokenguard.Config{Issuer: srv.Issuer() + "/", Key: key, ProjectID: project.ID} // mind the slash
	for _, r := range tokenguard.Check(context.Background(), cfg, "") {
		switch {
		case r.OK():
			fmt.Println(r.Name, "ok")
		case errors.Is(r.Err, tokenguard.ErrCheckSkipped):
			fmt.Println(r.Name, "skipped")
		default:
			fmt.Println(r.Name, "failed") // log r.String(): what is wrong, and how to fix it
		}
	}
	// Output:
	// config ok
	// key ok
	// issuer failed
	// client-auth skipped
	// clock ok
}
