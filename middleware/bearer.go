package middleware

import "strings"

// MaxTokenSize is the largest Authorization header value accepted (8 KiB).
const MaxTokenSize = 8 << 10

// ParseAuthorization extracts a bearer token (RFC 6750 §2.1) from the values
// of an Authorization header, or of "authorization" gRPC metadata, for
// [Middleware.Check]. No value, an empty one or a scheme other than Bearer
// is a 401 without error code (wrapping [ErrNoToken]); two values, an
// oversized one (over [MaxTokenSize]), a Bearer scheme without a token, or a
// token outside the b64token set is a 400 invalid_request (wrapping
// [ErrMalformed]). The scheme is matched case-insensitively.
func ParseAuthorization(values []string) (string, *Error) {
	token, err := parseBearer(values)
	switch {
	case err == ErrNoToken:
		return "", noToken()
	case err != nil:
		return "", badRequest(err.(malformedError))
	case !isB64Token(token):
		return "", badRequest(errNotB64Token)
	}
	return token, nil
}

// parseBearer is ParseAuthorization without the b64token check, which the
// middleware runs only before a token can reach the server.
func parseBearer(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", ErrNoToken
	case 1:
	default:
		return "", malformedError("more than one Authorization header")
	}
	v := values[0]
	if len(v) > MaxTokenSize {
		return "", malformedError("Authorization header exceeds 8 KiB")
	}
	for v != "" && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	if v == "" {
		return "", ErrNoToken
	}
	scheme, token, _ := strings.Cut(v, " ")
	if scheme != "Bearer" && !strings.EqualFold(scheme, "Bearer") {
		return "", ErrNoToken
	}
	token = trimBlanks(token)
	if token == "" {
		return "", malformedError("Bearer scheme without a token")
	}
	return token, nil
}

// trimBlanks cuts the spaces and tabs (RFC 9110's OWS) around s: the same as
// strings.Trim(s, " \t"), without building a cutset on every request.
func trimBlanks(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// b64tokenChar marks the characters of RFC 6750's b64token before its
// trailing "=" padding: ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/".
var b64tokenChar = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
	}
	return t
}()

// isB64Token reports whether s matches 1*( ALPHA / DIGIT / "-" / "." / "_" /
// "~" / "+" / "/" ) *"=". It runs on every request: one table load a byte.
func isB64Token(s string) bool {
	i := 0
	for i < len(s) && b64tokenChar[s[i]] {
		i++
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// Malformed requests, refused before any introspection.
const (
	errNotB64Token = malformedError("token has characters outside the RFC 6750 b64token set")
	errTooLarge    = malformedError("token exceeds 8 KiB")
	errTwoSources  = malformedError("token sent in more than one way (RFC 6750 section 2)")
)

type malformedError string

func (e malformedError) Error() string        { return "middleware: malformed request: " + string(e) }
func (e malformedError) Is(target error) bool { return target == ErrMalformed }
