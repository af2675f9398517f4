package introspect

import (
	"net/url"
	"slices"
	"strings"
)

// encodeForm is form.Encode (keys sorted, keys and values query-escaped),
// written into one buffer sized up front. url.Values.Encode grows its
// builder several times and allocates for each escaped value; a client
// assertion makes the form about a kilobyte, encoded on every introspection.
// FuzzEncodeForm holds it to url.Values.Encode's output.
func encodeForm(form url.Values) string {
	var buf [8]string
	keys := buf[:0]
	n := 0
	for k, vs := range form {
		keys = append(keys, k)
		for _, v := range vs {
			n += len(k) + len(v) + 2
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	b.Grow(n + n/8) // room for a few escapes without growing
	for _, k := range keys {
		for _, v := range form[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			writeQueryEscaped(&b, k)
			b.WriteByte('=')
			writeQueryEscaped(&b, v)
		}
	}
	return b.String()
}

// queryUnreserved are the bytes url.QueryEscape leaves as they are.
var queryUnreserved = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~'
	}
	return t
}()

// writeQueryEscaped writes url.QueryEscape(s) to b.
func writeQueryEscaped(b *strings.Builder, s string) {
	const hex = "0123456789ABCDEF"
	for len(s) > 0 {
		i := 0
		for i < len(s) && queryUnreserved[s[i]] {
			i++
		}
		b.WriteString(s[:i])
		if i == len(s) {
			return
		}
		switch c := s[i]; c {
		case ' ':
			b.WriteByte('+')
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
		s = s[i+1:]
	}
}
