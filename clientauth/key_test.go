package clientauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func testRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		var err error
		rsaKey, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
	})
	return rsaKey
}

func pemOf(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func pkcs8(t testing.TB, k any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf("PRIVATE KEY", der)
}

func keyJSON(t testing.TB, fields map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseKeyAccepts(t *testing.T) {
	t.Parallel()
	rk := testRSAKey(t)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ek)
	_, edk, _ := ed25519.GenerateKey(rand.Reader)

	tests := []struct {
		name         string
		fields       map[string]any
		wantClientID string
	}{
		{"application PKCS1", map[string]any{"type": "application", "keyId": "k1", "key": pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)), "appId": "a1", "clientId": "c1@proj"}, "c1@proj"},
		{"application PKCS8", map[string]any{"type": "application", "keyId": "k1", "key": pkcs8(t, rk), "clientId": "c1"}, "c1"},
		{"serviceaccount", map[string]any{"type": "serviceaccount", "keyId": "k2", "key": pkcs8(t, rk), "userId": "u1"}, "u1"},
		{"EC SEC1", map[string]any{"type": "serviceaccount", "keyId": "k3", "key": pemOf("EC PRIVATE KEY", ecDER), "userId": "u2"}, "u2"},
		{"Ed25519", map[string]any{"type": "application", "keyId": "k4", "key": pkcs8(t, edk), "clientId": "c4"}, "c4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := ParseKey(keyJSON(t, tt.fields))
			if err != nil {
				t.Fatalf("ParseKey() err = %v", err)
			}
			if k.ClientID != tt.wantClientID || k.KeyID != tt.fields["keyId"] || k.Signer == nil {
				t.Errorf("ParseKey() = {ClientID %q, KeyID %q, Signer %T}, want ClientID %q KeyID %q", k.ClientID, k.KeyID, k.Signer, tt.wantClientID, tt.fields["keyId"])
			}
			if k.Type == TypeApplication && k.AppID != "" && k.AppID != tt.fields["appId"] {
				t.Errorf("AppID = %q, want %q", k.AppID, tt.fields["appId"])
			}
		})
	}
}

func TestParseKeyRejects(t *testing.T) {
	t.Parallel()
	rk := testRSAKey(t)
	good := pkcs8(t, rk)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	pubDER, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	ek, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)

	tests := []struct {
		name      string
		data      []byte
		wantField string
		wantIn    string
	}{
		{"not JSON", []byte("-----BEGIN RSA PRIVATE KEY-----"), "", "not a JSON object"},
		{"JSON array", []byte("[]"), "", "not a JSON object"},
		{"missing type", keyJSON(t, map[string]any{"keyId": "k", "key": good, "clientId": "c"}), "type", "missing"},
		{"unknown type", keyJSON(t, map[string]any{"type": "user", "keyId": "k", "key": good}), "type", `unknown type "user"`},
		{"type not string", keyJSON(t, map[string]any{"type": 7, "keyId": "k", "key": good}), "type", "must be a string"},
		{"application without clientId", keyJSON(t, map[string]any{"type": "application", "keyId": "k", "key": good, "appId": "a"}), "clientId", "missing"},
		{"application without keyId", keyJSON(t, map[string]any{"type": "application", "key": good, "clientId": "c"}), "keyId", "missing"},
		{"serviceaccount without userId", keyJSON(t, map[string]any{"type": "serviceaccount", "keyId": "k", "key": good, "clientId": "c"}), "userId", "missing"},
		{"missing key", keyJSON(t, map[string]any{"type": "serviceaccount", "keyId": "k", "userId": "u"}), "key", "missing"},
		{"key not PEM", keyJSON(t, map[string]any{"type": "application", "keyId": "k", "key": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "clientId": "c"}), "key", "no PEM block"},
		{"public key", keyJSON(t, map[string]any{"type": "application", "keyId": "k", "key": pemOf("PUBLIC KEY", pubDER), "clientId": "c"}), "key", "PUBLIC KEY, want a private key"},
		{"corrupt DER", keyJSON(t, map[string]any{"type": "application", "keyId": "k", "key": pemOf("PRIVATE KEY", []byte("garbage")), "clientId": "c"}), "key", "malformed PRIVATE KEY"},
		{"short RSA", keyJSON(t, map[string]any{"type": "application", "keyId": "k", "key": pkcs8(t, small), "clientId": "c"}), "key", "1024 bits is too short"},
		{"P-224", keyJSON(t, map[string]any{"type": "application", "keyId": "k", "key": pkcs8(t, ek), "clientId": "c"}), "key", "unsupported ECDSA curve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseKey(tt.data)
			var kerr *KeyFileError
			if !errors.As(err, &kerr) {
				t.Fatalf("ParseKey() err = %v, want a *KeyFileError", err)
			}
			if kerr.Field != tt.wantField || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("ParseKey() err = %q (field %q), want field %q and %q in the message", err, kerr.Field, tt.wantField, tt.wantIn)
			}
			if strings.Contains(err.Error(), "MII") || strings.Contains(err.Error(), "BEGIN") {
				t.Errorf("ParseKey() err = %q echoes key material", err)
			}
		})
	}
}

func TestLoadKeyNamesTheFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "api-key.json")
	if err := os.WriteFile(path, []byte(`{"type":"application","keyId":"k","key":"nope"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadKey(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "field clientId") {
		t.Errorf("LoadKey(%q) err = %v, want it to name the file and field clientId", path, err)
	}
	if _, err := LoadKey(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("LoadKey(missing) err = %v, want it to name the file", err)
	}
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, make([]byte, 100<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(big); err == nil || !strings.Contains(err.Error(), "64 KiB") {
		t.Errorf("LoadKey(big) err = %v, want a size error", err)
	}

	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, keyJSON(t, map[string]any{"type": "application", "keyId": "k", "key": pkcs8(t, testRSAKey(t)), "clientId": "c"}), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := LoadKey(good); err != nil || k.ClientID != "c" {
		t.Errorf("LoadKey(good) = %v, %v", k, err)
	}
}

func FuzzParseKey(f *testing.F) {
	rk := testRSAKey(f)
	f.Add(keyJSON(f, map[string]any{"type": "application", "keyId": "k", "key": pkcs8(f, rk), "clientId": "c"}))
	f.Add(keyJSON(f, map[string]any{"type": "serviceaccount", "keyId": "k", "key": pkcs8(f, rk), "userId": "u"}))
	f.Add([]byte(`{"type":"application","keyId":1}`))
	f.Add([]byte(`{"type":"serviceaccount","keyId":"k","key":"-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n","userId":"u"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKey(data)
		if err != nil {
			var kerr *KeyFileError
			if !errors.As(err, &kerr) {
				t.Fatalf("ParseKey() err = %v (%T), want *KeyFileError", err, err)
			}
			return
		}
		if k.Signer == nil || k.ClientID == "" || k.KeyID == "" {
			t.Fatalf("ParseKey() accepted an incomplete key: %+v", k)
		}
		if k.Type != TypeApplication && k.Type != TypeServiceAccount {
			t.Fatalf("ParseKey() accepted type %q", k.Type)
		}
	})
}
