package introspect_test

import (
	"strings"
	"testing"

	"github.com/tokenguard/tokenguard/introspect"
)

func TestActor(t *testing.T) {
	t.Parallel()
	deep := `{"sub":"a0"}`
	for i := 1; i < 20; i++ {
		deep = `{"sub":"a` + strings.Repeat("x", i) + `","act":` + deep + `}`
	}
	for _, tc := range []struct {
		name      string
		body      string
		want      string // actor subject, "" for not delegated
		wantChain int
	}{
		{"not delegated", `{"active":true,"sub":"u"}`, "", 0},
		{"actor", `{"active":true,"sub":"u","act":{"sub":"svc","client_id":"c@p"}}`, "svc", 0},
		{"chain", `{"active":true,"sub":"u","act":{"sub":"svc","act":{"sub":"first"}}}`, "svc", 1},
		{"actor without a subject", `{"active":true,"sub":"u","act":{"client_id":"c"}}`, "", 0},
		{"act not an object", `{"active":true,"sub":"u","act":"svc"}`, "", 0},
		{"act null", `{"active":true,"sub":"u","act":null}`, "", 0},
		{"deep nesting is capped", `{"active":true,"sub":"u","act":` + deep + `}`, "a" + strings.Repeat("x", 19), 7},
	} {
		r, err := introspect.Decode([]byte(tc.body))
		if err != nil {
			t.Fatalf("%s: Decode: %v", tc.name, err)
		}
		a, ok := r.Actor()
		if ok != (tc.want != "") || a.Subject != tc.want || len(a.Chain) != tc.wantChain {
			t.Errorf("%s: Actor() = %+v, %v; want subject %q with %d earlier actors", tc.name, a, ok, tc.want, tc.wantChain)
		}
	}
}

func FuzzActor(f *testing.F) {
	f.Add([]byte(`{"active":true,"sub":"u","act":{"sub":"svc","act":{"sub":"first"}}}`))
	f.Add([]byte(`{"active":true,"act":[1,2]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := introspect.Decode(body)
		if err != nil {
			return
		}
		a, ok := r.Actor()
		if ok != (a.Subject != "") || len(a.Chain) >= 8 {
			t.Errorf("Actor() = %+v, %v", a, ok)
		}
	})
}
