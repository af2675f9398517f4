package devserver

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// Project is a ZITADEL project: the unit an API's audience and roles belong to.
type Project struct {
	ID   string
	Name string
}

// App is an API application of a project: what an API authenticates as when
// it introspects tokens.
type App struct {
	ProjectID string
	AppID     string
	ClientID  string // {appID}@{project name}, as ZITADEL forms it
	// KeyJSON is the application key file ({"type":"application",...}) when
	// the app authenticates with private_key_jwt.
	KeyJSON []byte
	// Secret is set when the app authenticates with client_secret_basic.
	Secret string
}

// ServiceUser is a machine user that signs JWTs with its key and trades them
// for access tokens.
type ServiceUser struct {
	UserID   string
	Username string
	OrgID    string
	// KeyJSON is the service user's key file ({"type":"serviceaccount",...}).
	KeyJSON []byte
	// Secret is the client secret for the client_credentials grant.
	Secret string
}

// Grant gives a user roles in a project.
type Grant struct {
	ProjectID string
	Roles     []string
}

// Org is the single organization every user belongs to.
type Org struct {
	ID     string
	Name   string
	Domain string
}

type app struct {
	App
	keyID  string
	pubKey *rsa.PublicKey
}

type user struct {
	ServiceUser
	keyID    string
	pubKey   *rsa.PublicKey
	grants   map[string][]string // project ID -> roles
	grantIDs map[string]string   // project ID -> the user grant's ID, the aggregate of its events
	locked   bool
}

type token struct {
	id       string
	subject  string
	clientID string
	audience []string
	scopes   []string
	issuedAt time.Time
	expiry   time.Time
	revoked  bool
}

// newID returns an 18-digit numeric ID like ZITADEL's.
func newID() string {
	n, err := rand.Int(rand.Reader, new(big.Int).Exp(big.NewInt(10), big.NewInt(17), nil))
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("3%017d", n)
}

// newSecret returns a random client secret.
func newSecret() string {
	return rand.Text()
}

// newKey generates an RSA key and its ZITADEL key file.
func newKey(fields map[string]string) (keyID string, pub *rsa.PublicKey, keyJSON []byte, err error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", nil, nil, err
	}
	der := x509.MarshalPKCS1PrivateKey(k)
	keyID = newID()
	fields["keyId"] = keyID
	fields["key"] = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der}))
	keyJSON, err = json.MarshalIndent(fields, "", "  ")
	return keyID, &k.PublicKey, keyJSON, err
}
