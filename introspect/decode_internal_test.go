package introspect

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// decoded is what a Response decoded to, comparable with reflect.DeepEqual:
// project roles in a fixed order (the former decoder took them in map
// order).
func decoded(r *Response) any {
	c := *r
	c.projectRoles = slices.Clone(r.projectRoles)
	slices.SortFunc(c.projectRoles, func(a, b projectRoles) int { return strings.Compare(a.projectID, b.projectID) })
	return c
}

// sameDecoding fails t unless Decode and the former decoder agree on data:
// both refuse it, or both decode it to the same Response.
func sameDecoding(t *testing.T, data []byte) {
	t.Helper()
	got, err := Decode(data)
	want, refErr := referenceDecode(data)
	if errors.Is(err, errTimeRange) && refErr == nil {
		// A deliberate difference: the former decoder took any number.
		for _, t := range []oidc.Time{want.Expiration, want.IssuedAt, want.NotBefore} {
			if t < minTime || t > maxTime {
				return
			}
		}
		t.Fatalf("Decode(%q): err = %v, but the former decoder's times are all in range", data, err)
	}
	if (err != nil) != (refErr != nil) {
		t.Fatalf("Decode(%q): err = %v, the former decoder's = %v", data, err, refErr)
	}
	if err != nil {
		return
	}
	if g, w := decoded(got), decoded(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("Decode(%q):\n got %+v\nwant %+v", data, g, w)
	}
}

func TestDecodeMatchesReference(t *testing.T) {
	t.Parallel()
	deep := func(n int) string {
		return `{"active":true,"x":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}`
	}
	for _, body := range []string{
		// What ZITADEL sends.
		`{"active":true,"scope":"openid profile urn:zitadel:iam:org:project:id:1:aud","client_id":"c1","token_type":"Bearer",
		  "exp":1700000000,"iat":1699990000,"nbf":1699990000,"sub":"u1","aud":["p1","c1"],"iss":"https://zitadel.example.com",
		  "jti":"j1","username":"bot","urn:zitadel:iam:user:resourceowner:id":"o1","urn:zitadel:iam:user:resourceowner:name":"Org",
		  "urn:zitadel:iam:org:project:roles":{"admin":{"o1":"org.example.com"},"reader":{"o1":"org.example.com","o2":"b.example.com"}},
		  "urn:zitadel:iam:org:project:1:roles":{"admin":{"o1":"org.example.com"},"reader":{"o1":"org.example.com","o2":"b.example.com"}}}`,
		`{"active":false}`, `{}`, `null`, " \t\n{\"active\":true} \r\n", ` null `,
		// Not an object, or not JSON.
		`[]`, `"x"`, `1`, `true`, ``, ` `, `{`, `{"active":true}x`, `{"active":true}{}`, `{"active":tru}`, `{"a":1,}`,
		`{,"a":1}`, `{"a" 1}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":"\x"}`, `{"a":"\u12"}`,
		"{\"a\":\"\x01\"}", `{"a":[1,]}`, `{"a":[,1]}`, `{'a':1}`, `{"a":NaN}`, "\xc2\xa0{}", `{"a":1}` + "\x00",
		// Nesting: encoding/json's limit is 10000.
		deep(10000), deep(10001),
		// Names and values with escapes, non-ASCII bytes, invalid UTF-8.
		`{"\u0061ctive":true,"s\u0075b":"al\u0069ce","aud":"p\u00e9"}`, `{"active":true,"sub":"\ud83d\ude00 \ud800"}`,
		"{\"active\":true,\"sub\":\"caf\xc3\xa9\",\"iss\":\"bad\xff\xfe\"}", `{"active":true,"scope":"a\tb  c "}`,
		`{"active":true,"scope":"a\u0020b"}`, `{"active":true,"scope":["a","b"]}`, `{"active":true,"scope":["a b"]}`,
		`{"active":true,"scope":null}`, `{"active":true,"scope":""}`, `{"active":true,"scope":1}`, `{"active":true,"scope":[]}`,
		// Duplicates: the last occurrence counts.
		`{"active":false,"active":true}`, `{"active":true,"active":false}`, `{"active":"x","active":true}`,
		`{"sub":"a","sub":null}`, `{"exp":"bad","exp":5}`,
		`{"urn:zitadel:iam:org:project:roles":{"a":{"o":"d"}},"urn:zitadel:iam:org:project:roles":{"b":{"o":"d"}}}`,
		`{"urn:zitadel:iam:org:project:roles":{"a":{"o1":"d"},"a":{"o2":"d"}}}`,
		`{"urn:zitadel:iam:org:project:roles":{"a":{"o1":"d"},"a":{}}}`, `{"urn:zitadel:iam:org:project:roles":{"a":{"o1":"d"},"a":5}}`,
		`{"urn:zitadel:iam:org:project:roles":{"a":{"o1":"d1","o1":"d2"}}}`, `{"urn:zitadel:iam:org:project:roles":{"a":{"o1":"d1","o1":7}}}`,
		`{"urn:zitadel:iam:org:project:7:roles":{"a":{"o":"d"}},"urn:zitadel:iam:org:project:7:roles":{"b":{"o":"d"}}}`,
		// Times: numbers of every form, RFC 3339, other types.
		`{"exp":1700000000}`, `{"exp":1700000000.9}`, `{"exp":-5}`, `{"exp":-0}`, `{"exp":0}`, `{"exp":1e9}`, `{"exp":1E+9}`,
		`{"exp":123456789012345}`, `{"exp":1234567890123456}`, `{"exp":12345678901234567890}`, `{"exp":1e400}`, `{"exp":1e300}`,
		`{"exp":"2024-01-01T00:00:00Z"}`, `{"exp":"yesterday"}`, `{"exp":null}`, `{"exp":true}`, `{"exp":[1]}`, `{"iat":5,"nbf":6}`,
		// aud.
		`{"aud":"p"}`, `{"aud":["p","c"]}`, `{"aud":[]}`, `{"aud":null}`, `{"aud":5}`, `{"aud":{}}`, `{"aud":[1,2]}`, `{"aud":["p",1]}`,
		`{"aud":["p\u0031"]}`, `{"aud":[null]}`,
		// Strings and the org ID of the wrong type.
		`{"sub":5}`, `{"client_id":true}`, `{"sub":null}`, `{"urn:zitadel:iam:user:resourceowner:id":5}`,
		`{"urn:zitadel:iam:user:resourceowner:id":null}`, `{"urn:zitadel:iam:user:resourceowner:id":"o\u0031"}`,
		`{"sub":"u","client_id":"u"}`,
		// Roles of every shape.
		`{"urn:zitadel:iam:org:project:roles":null}`, `{"urn:zitadel:iam:org:project:roles":["admin"]}`,
		`{"urn:zitadel:iam:org:project:roles":{"admin":true}}`, `{"urn:zitadel:iam:org:project:roles":{"admin":null}}`,
		`{"urn:zitadel:iam:org:project:roles":{"admin":{"o":null}}}`, `{"urn:zitadel:iam:org:project:roles":{"admin":{"o":1}}}`,
		`{"urn:zitadel:iam:org:project:roles":{"admin":{"o":{"x":1}}}}`, `{"urn:zitadel:iam:org:project:roles":{"adm\u0069n":{"\u006f":"d\u00e9"}}}`,
		`{"urn:zitadel:iam:org:project::roles":{"a":{"o":"d"}}}`, `{"urn:zitadel:iam:org:project:a:b:roles":{"a":{"o":"d"}}}`,
		`{"urn:zitadel:iam:org:project:1:roles":{"a":{"o":"d"}},"urn:zitadel:iam:org:project:2:roles":{"b":{"o":"d"}},"urn:zitadel:iam:org:project:roles":{"a":{"o":"d"}}}`,
		`{"urn:zitadel:iam:org:project:roles":{},"urn:zitadel:iam:org:project:1:roles":{}}`,
		`{"urn:zitadel:iam:org:project:roles":{"b":{"o2":"d","o1":"d"},"a":{"o":"d"}},"urn:zitadel:iam:org:project:\u0031:roles":{"c":{"o":"d"}}}`,
	} {
		t.Run(fmt.Sprintf("%.40q", body), func(t *testing.T) {
			t.Parallel()
			sameDecoding(t, []byte(body))
		})
	}
}

// FuzzDecodeMatchesReference holds the hand-written decoder to the former
// one, encoding/json with oidc's types: both refuse the same bodies and
// decode the others to the same Response.
func FuzzDecodeMatchesReference(f *testing.F) {
	for _, s := range []string{
		`{"active":true,"aud":"p","exp":1700000000,"scope":"openid profile","sub":"u","client_id":"u"}`,
		`{"active":true,"aud":["p","c"],"exp":1.7e9,"nbf":"2024-01-01T00:00:00Z","iat":-1}`,
		`{"active":true,"urn:zitadel:iam:org:project:roles":{"admin":{"o":"d"}},"urn:zitadel:iam:org:project:1:roles":{"r":{"o":1}}}`,
		`{"active":false,"active":true,"sub":"\u0061","urn:zitadel:iam:user:resourceowner:id":"o"}`, `null`, `{"aud":[1,2]}`,
		`{"urn:zitadel:iam:org:project:roles":{"a":{"o1":"d"},"a":{"o2":"d","o2":"e"},"b":[]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { sameDecoding(t, data) })
}

// BenchmarkDecodeFormer is BenchmarkDecode with the former decoder, for
// comparison.
func BenchmarkDecodeFormer(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := referenceDecode([]byte(typicalBody)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeLeavesTheResponseOnError: a body refused half way must not
// leave the claims it decoded before the error in the Response.
func TestDecodeLeavesTheResponseOnError(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"sub":5,"active":true,"exp":4000000000}`,
		`{"active":true,"exp":4000000000,"aud":[1]}`,
		`{"active":true,"exp":1e300}`,
		`{"active":true,"exp":4000000000} x`,
	} {
		var r Response
		if err := r.UnmarshalJSON([]byte(body)); err == nil {
			t.Fatalf("UnmarshalJSON(%s) err = nil", body)
		}
		if !reflect.DeepEqual(r, Response{}) {
			t.Errorf("UnmarshalJSON(%s) failed but left %+v", body, r)
		}
	}
}

// TestDecodeTimesOutOfRange: times the decoder cannot hold as a date
// between the years 1 and 9999 are refused, never read as "no expiry".
func TestDecodeTimesOutOfRange(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"1e300", "-1e300", "1e19", "9.3e18", "12345678901234567890", "253402300800", "-62135596801",
		`"0000-01-01T00:00:00Z"`, `"9999-12-31T23:59:59-23:59"`} {
		for _, name := range []string{"exp", "iat", "nbf"} {
			body := `{"active":true,"` + name + `":` + v + `}`
			if _, err := Decode([]byte(body)); !errors.Is(err, errTimeRange) {
				t.Errorf("Decode(%s) err = %v, want out of range", body, err)
			}
		}
	}
	for _, v := range []string{"253402300799", "-62135596800", "0", "1.5", "-1", `"2024-01-01T00:00:00Z"`, `"9999-12-31T23:59:59Z"`, "null"} {
		if _, err := Decode([]byte(`{"active":true,"exp":` + v + `}`)); err != nil {
			t.Errorf("Decode(exp %s) err = %v", v, err)
		}
	}
}

// TestDecodeDepthTakesNoStack: however deep a value nests (up to
// encoding/json's limit of 10000), skipping it takes no stack. A decoder
// that recursed would need megabytes: under this stack limit the test
// binary would die.
func TestDecodeDepthTakesNoStack(t *testing.T) { // not parallel: SetMaxStack is process-wide
	body := []byte(`{"active":true,"exp":4000000000,"x":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) +
		`,"y":` + strings.Repeat(`{"a":`, 9998) + "1" + strings.Repeat("}", 9998) + `}`)
	deep := []byte(`{"x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`)
	done := make(chan error, 2)
	prev := debug.SetMaxStack(1 << 20) // a recursive decoder needs about 2 MiB here; other goroutines keep a margin
	defer debug.SetMaxStack(prev)
	go func() { // a new goroutine: the test's own stack may have grown already
		_, err := Decode(body)
		done <- err
		_, err = Decode(deep)
		done <- err
	}()
	if err := <-done; err != nil {
		t.Errorf("Decode(depth 10000) err = %v", err)
	}
	if err := <-done; err == nil {
		t.Error("Decode(depth 10001) err = nil, want exceeded max depth")
	}
}

// TestDecodeLargeBodiesStayLinear: bodies of a hostile server, up to the 1
// MiB that is read, cost memory in proportion to their size, and duplicate
// names are resolved with a set once there are many.
func TestDecodeLargeBodiesStayLinear(t *testing.T) {
	var many strings.Builder // distinct role claims
	many.WriteString(`{"active":true`)
	for i := 0; many.Len() < MaxResponseSize-100; i++ {
		fmt.Fprintf(&many, `,"urn:zitadel:iam:org:project:%d:roles":{"r":{"o":"d"}}`, i)
	}
	many.WriteString("}")
	var dups strings.Builder // one role granted by one organization, named again and again
	dups.WriteString(`{"active":true,"urn:zitadel:iam:org:project:roles":{"r":{"o":"d"`)
	for dups.Len() < MaxResponseSize-100 {
		dups.WriteString(`,"o":"d"`)
	}
	dups.WriteString("}}}")
	for name, body := range map[string]string{"distinct role claims": many.String(), "duplicate organizations": dups.String()} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r, err := Decode([]byte(body))
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 24*uint64(len(body)) {
			t.Errorf("%s: decoding %d bytes allocated %d, more than 24 times the body", name, len(body), alloc)
		}
		if name == "duplicate organizations" && r.Roles().Len() != 1 {
			t.Errorf("%s: %d grants, want 1", name, r.Roles().Len())
		}
	}
	var x nameIndex
	for i := range 1000 {
		name := []byte(fmt.Sprint(i))
		if _, ok := x.find(name); ok {
			t.Fatalf("nameIndex: %s found before it was added", name)
		}
		x.add(name, i)
		if at, ok := x.find(name); !ok || at != i {
			t.Fatalf("nameIndex: %s at %d, %v; want %d", name, at, ok, i)
		}
	}
	if x.large == nil {
		t.Error("an index of 1000 names is a slice: its lookups are linear, a hostile body's decoding quadratic")
	}
}
