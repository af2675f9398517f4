package introspect_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/tokenguard/tokenguard/introspect"
)

// reencodings returns tok with its signature written in other forms that
// decode to the same bytes: padded, with line breaks (which base64 decoders
// skip), in the standard alphabet, and with each other value of the last
// character's unused bits.
func reencodings(t *testing.T, tok string) []string {
	t.Helper()
	i := strings.LastIndexByte(tok, '.')
	head, sig := tok[:i+1], tok[i+1:]
	if len(sig)%4 == 0 {
		t.Fatalf("signature of %d characters has no unused bits", len(sig))
	}
	out := []string{head + sig + "=", head + sig + "==", head + sig[:1] + "\n" + sig[1:], head + sig[:5] + "\r\n" + sig[5:]}
	if std := strings.NewReplacer("-", "+", "_", "/").Replace(sig); std != sig {
		out = append(out, head+std)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	unused := 6 - (len(sig)*6)%8 // bits of the last character that carry nothing
	for b := 1; b < 1<<unused; b++ {
		out = append(out, head+sig[:len(sig)-1]+string(alphabet[last^b]))
	}
	return out
}

// TestOnlyCanonicalJWTsAreDecidedLocally: one JWT written with its
// signature re-encoded (the same signature bytes) is never decided locally:
// each form would be another cache key with its own record, so that a JWT
// the server has refused would be accepted locally again, once per form.
// The other forms go to the server, which decides them.
func TestOnlyCanonicalJWTsAreDecidedLocally(t *testing.T) {
	t.Parallel()
	as, clk := startJWTAS(t), newClock()
	c := localClient(t, as, clk)
	ctx := context.Background()

	claims := as.claims(clk.Now())
	as.revoke(claims["jti"].(string))
	tok := as.sign(t, "k1", jwa.RS256(), claims)
	if r, err := c.Introspect(ctx, tok); err != nil || !r.Local() {
		t.Fatalf("first use: %v, %v; want a local decision", r, err)
	}
	eventually(t, "the inactive confirmation", func() bool {
		_, err := c.Introspect(ctx, tok)
		return errors.Is(err, introspect.ErrInactive)
	})
	forms := reencodings(t, tok)
	before := as.introspections.Load()
	for _, v := range forms {
		if r, err := c.Introspect(ctx, v); err == nil {
			t.Errorf("%q...: accepted (local %v), a form of a JWT the server refused", v[len(v)-8:], r.Local())
		}
	}
	if n := as.introspections.Load() - before; n == 0 {
		t.Error("no form reached the server")
	}

	good := as.sign(t, "k1", jwa.RS256(), as.claims(clk.Now()))
	for _, v := range reencodings(t, good) {
		if r, err := c.Introspect(ctx, v); err == nil && r.Local() {
			t.Errorf("%q...: decided locally, want the server asked", v[len(v)-8:])
		}
	}
	if r, err := c.Introspect(ctx, good); err != nil || !r.Local() {
		t.Errorf("the canonical form: %v, %v; want a local decision", r, err)
	}
}
