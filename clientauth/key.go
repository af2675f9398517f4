package clientauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
)

// KeyType is the "type" of a ZITADEL key file.
type KeyType string

// The key file types ZITADEL issues.
const (
	// TypeApplication is the key of an API or application (client): the
	// client authenticates as its clientId.
	TypeApplication KeyType = "application"
	// TypeServiceAccount is the key of a service user (machine user): the
	// user authenticates as its userId.
	TypeServiceAccount KeyType = "serviceaccount"
)

// MinRSABits is the smallest RSA modulus [ParseKey] accepts.
const MinRSABits = 2048

// maxKeyFileSize bounds how much of a key file is read.
const maxKeyFileSize = 64 << 10

// Key is a parsed ZITADEL key file. It holds a private key: do not log it.
type Key struct {
	// Type is the file's "type".
	Type KeyType
	// KeyID is the file's "keyId", sent as the JWT header "kid".
	KeyID string
	// ClientID is who the key authenticates: the "clientId" of an
	// application key, the "userId" of a service account key. It is the
	// iss and sub of the assertions the key signs.
	ClientID string
	// AppID is the "appId" of an application key; empty otherwise.
	AppID string
	// UserID is the "userId" of a service account key; empty otherwise.
	UserID string
	// Signer is the private key from the file's "key" (PEM, PKCS #1,
	// PKCS #8 or SEC 1): an *rsa.PrivateKey, *ecdsa.PrivateKey or
	// ed25519.PrivateKey.
	Signer crypto.Signer
}

// KeyFileError reports a key file that cannot be used. It names the file (when
// read from disk) and the field at fault, and never contains key material.
type KeyFileError struct {
	File   string // path given to LoadKey; empty for ParseKey
	Field  string // JSON field at fault; empty when the file as a whole is at fault
	Reason string
}

// Error names the file, the field and the reason.
func (e *KeyFileError) Error() string {
	msg := "clientauth: key file"
	if e.File != "" {
		msg += " " + e.File
	}
	if e.Field != "" {
		msg += ": field " + e.Field
	}
	return msg + ": " + e.Reason
}

type keyFile struct {
	Type     *string `json:"type"`
	KeyID    *string `json:"keyId"`
	Key      *string `json:"key"`
	AppID    *string `json:"appId"`
	ClientID *string `json:"clientId"`
	UserID   *string `json:"userId"`
}

// LoadKey reads and parses the ZITADEL key file at path. See [ParseKey].
func LoadKey(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("clientauth: key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, &KeyFileError{File: path, Reason: "reading: " + err.Error()}
	}
	if len(data) > maxKeyFileSize {
		return nil, &KeyFileError{File: path, Reason: "larger than 64 KiB, not a key file"}
	}
	k, err := ParseKey(data)
	if err != nil {
		var kerr *KeyFileError
		if errors.As(err, &kerr) {
			kerr.File = path
		}
		return nil, err
	}
	return k, nil
}

// ParseKey parses a ZITADEL key file. The "type" must be "application" (with
// "keyId", "key" and "clientId"; "appId" is kept when present) or
// "serviceaccount" (with "keyId", "key" and "userId"). The key must be a
// private RSA key of at least [MinRSABits] bits, an ECDSA key on P-256, P-384
// or P-521, or an Ed25519 key. Errors are [*KeyFileError] values.
func ParseKey(data []byte) (*Key, error) {
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return nil, &KeyFileError{Field: typeErr.Field, Reason: "must be a string"}
		}
		return nil, &KeyFileError{Reason: "not a JSON object"}
	}
	if f.Type == nil || *f.Type == "" {
		return nil, &KeyFileError{Field: "type", Reason: `missing; want "application" or "serviceaccount"`}
	}
	k := &Key{Type: KeyType(*f.Type)}
	var need []string
	switch k.Type {
	case TypeApplication:
		need = []string{"keyId", "key", "clientId"}
	case TypeServiceAccount:
		need = []string{"keyId", "key", "userId"}
	default:
		return nil, &KeyFileError{Field: "type", Reason: fmt.Sprintf(`unknown type %q; want "application" or "serviceaccount"`, truncate(*f.Type, 40))}
	}
	fields := map[string]*string{"keyId": f.KeyID, "key": f.Key, "clientId": f.ClientID, "userId": f.UserID}
	for _, name := range need {
		if v := fields[name]; v == nil || *v == "" {
			return nil, &KeyFileError{Field: name, Reason: fmt.Sprintf("missing (required for type %q)", k.Type)}
		}
	}
	k.KeyID = *f.KeyID
	if k.Type == TypeApplication {
		k.ClientID = *f.ClientID
		if f.AppID != nil {
			k.AppID = *f.AppID
		}
	} else {
		k.UserID = *f.UserID
		k.ClientID = k.UserID
	}
	signer, err := ParsePrivateKey([]byte(*f.Key))
	if err != nil {
		return nil, &KeyFileError{Field: "key", Reason: err.Error()}
	}
	k.Signer = signer
	return k, nil
}

// ParsePrivateKey parses a PEM-encoded private key in PKCS #1, PKCS #8 or
// SEC 1 form and checks that it is a key [ParseKey] accepts. Its errors never
// contain key material.
func ParsePrivateKey(pemBytes []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block found; want a PEM private key")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
		return nil, fmt.Errorf("PEM block is a %s, want a private key", block.Type)
	default:
		return nil, fmt.Errorf("unsupported PEM block type %q; want a private key", truncate(block.Type, 40))
	}
	if err != nil {
		return nil, fmt.Errorf("malformed %s", block.Type)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < MinRSABits {
			return nil, fmt.Errorf("RSA key of %d bits is too short; want at least %d", bits, MinRSABits)
		}
		return k, nil
	case *ecdsa.PrivateKey:
		if _, err := algorithmFor(k); err != nil {
			return nil, err
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("unsupported private key type %T", key)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
