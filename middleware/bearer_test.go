package middleware_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tokenguard/tokenguard/middleware"
)

func TestParseAuthorization(t *testing.T) {
	t.Parallel()
	tests := []struct {
		values  []string
		want    string
		wantErr error
	}{
		{nil, "", middleware.ErrNoToken},
		{[]string{}, "", middleware.ErrNoToken},
		{[]string{""}, "", middleware.ErrNoToken},
		{[]string{"   "}, "", middleware.ErrNoToken},
		{[]string{"Basic abc"}, "", middleware.ErrNoToken},
		{[]string{"Bearer abc"}, "abc", nil},
		{[]string{"bearer abc"}, "abc", nil},
		{[]string{"BEARER  abc=="}, "abc==", nil},
		{[]string{"Bearer a-b.c_d~e+f/g="}, "a-b.c_d~e+f/g=", nil},
		{[]string{"Bearer"}, "", middleware.ErrMalformed},
		{[]string{"Bearer =abc"}, "", middleware.ErrMalformed},
		{[]string{"Bearer ab=c"}, "", middleware.ErrMalformed},
		{[]string{"Bearer a b"}, "", middleware.ErrMalformed},
		{[]string{"Bearer a\x00"}, "", middleware.ErrMalformed},
		{[]string{"Bearer a", "Bearer b"}, "", middleware.ErrMalformed},
		{[]string{"Bearer " + strings.Repeat("a", middleware.MaxTokenSize)}, "", middleware.ErrMalformed},
	}
	for _, tt := range tests {
		got, err := middleware.ParseAuthorization(tt.values)
		if err == nil {
			if got != tt.want || tt.wantErr != nil {
				t.Errorf("ParseAuthorization(%.40q) = %q, nil; want %q, %v", tt.values, got, tt.want, tt.wantErr)
			}
			continue
		}
		wantStatus, wantCode := 400, middleware.CodeInvalidRequest
		if tt.wantErr == middleware.ErrNoToken {
			wantStatus, wantCode = 401, ""
		}
		if got != "" || !errors.Is(err, tt.wantErr) || err.StatusCode != wantStatus || err.Code != wantCode || err.Description == "" {
			t.Errorf("ParseAuthorization(%.40q) = %q, %+v; want %v (%d %q)", tt.values, got, err, tt.wantErr, wantStatus, wantCode)
		}
	}
}

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer a.b.c", "Basic x", "Bearer ", "Bearer a==", "Bearer\ta", "Bearer  a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tok, err := middleware.ParseAuthorization([]string{v})
		// The grammar, spelled out with the strings package as a second
		// opinion on the hand-written scanner.
		scheme, want, _ := strings.Cut(strings.TrimLeft(v, " \t"), " ")
		want = strings.Trim(want, " \t")
		if len(v) <= middleware.MaxTokenSize && strings.EqualFold(scheme, "Bearer") && want != "" {
			if b64 := strings.TrimRight(want, "="); b64 != "" && strings.Trim(b64, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/") == "" {
				if err != nil || tok != want {
					t.Fatalf("ParseAuthorization(%q) = %q, %v; want %q", v, tok, err, want)
				}
			}
		}
		if err != nil {
			if tok != "" || !(errors.Is(err, middleware.ErrNoToken) && err.StatusCode == 401 || errors.Is(err, middleware.ErrMalformed) && err.StatusCode == 400) {
				t.Fatalf("ParseAuthorization(%q) = %q, %v", v, tok, err)
			}
			return
		}
		if tok == "" || len(tok) > middleware.MaxTokenSize || strings.ContainsAny(tok, " \t\r\n\",") {
			t.Fatalf("ParseAuthorization(%q) accepted %q", v, tok)
		}
		if !strings.Contains(v, tok) {
			t.Fatalf("ParseAuthorization(%q) = %q, not part of the header", v, tok)
		}
	})
}
