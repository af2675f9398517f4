package introspect

import (
	"net/url"
	"strings"
	"testing"
)

func TestEncodeForm(t *testing.T) {
	assertion := strings.Repeat("eyJhbGciOiJSUzI1NiJ9", 40) + ".payload.sig-_~"
	for _, form := range []url.Values{
		{},
		{"token": {""}},
		{"token": {"abc"}, "token_type_hint": {"access_token"}, "client_assertion": {assertion},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}},
		{"token": {"a b&c=d+e%f/g?h#i"}, "ключ": {"значение"}, "": {"empty key"}},
		{"multi": {"1", "2", ""}, "a": {}, "z": {"\x00\x7f\xff"}},
		{"k1": {"v"}, "k2": {"v"}, "k3": {"v"}, "k4": {"v"}, "k5": {"v"}, "k6": {"v"}, "k7": {"v"}, "k8": {"v"}, "k9": {"v"}, "k10": {"v"}},
	} {
		if got, want := encodeForm(form), form.Encode(); got != want {
			t.Errorf("encodeForm(%v)\n got %q\nwant %q", form, got, want)
		}
	}
}

// FuzzEncodeForm holds encodeForm to url.Values.Encode, byte for byte.
func FuzzEncodeForm(f *testing.F) {
	f.Add("token", "abc", "client_assertion", "x.y.z")
	f.Add("a b", "c&d", "", "%zz")
	f.Add("token", "\x00\xff é", "token", "same key")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		form := url.Values{}
		form.Add(k1, v1)
		form.Add(k2, v2)
		form.Add("token_type_hint", "access_token")
		if got, want := encodeForm(form), form.Encode(); got != want {
			t.Fatalf("encodeForm(%q)\n got %q\nwant %q", form, got, want)
		}
	})
}

func BenchmarkEncodeForm(b *testing.B) {
	form := url.Values{"token": {strings.Repeat("t", 300)}, "token_type_hint": {"access_token"},
		"client_assertion":      {strings.Repeat("a", 800) + "." + strings.Repeat("b", 300) + "." + strings.Repeat("c", 342)},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}}
	for _, bc := range []struct {
		name string
		enc  func(url.Values) string
	}{{"encodeForm", encodeForm}, {"url.Values.Encode", url.Values.Encode}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = bc.enc(form)
			}
		})
	}
}
