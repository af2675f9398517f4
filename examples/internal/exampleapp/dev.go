package exampleapp

import (
	"context"
	"errors"
	"io"
)

// DevIfNoIssuer returns c unchanged when c.Issuer is set. Without an issuer
// it would start a development authorization server; until one exists it
// says what to set.
func DevIfNoIssuer(_ context.Context, c Config, _ io.Writer) (Config, func(), error) {
	if c.Issuer == "" {
		return c, func() {}, errors.New("set ISSUER, KEY_FILE and PROJECT_ID (or -issuer, -key-file, -project-id)")
	}
	return c, func() {}, nil
}
