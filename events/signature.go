package events

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Sign returns a ZITADEL-Signature header value for body at t, with one v1
// signature per key, as ZITADEL computes it.
func Sign(body []byte, t time.Time, keys ...[]byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	parts := []string{"t=" + ts}
	for _, k := range keys {
		parts = append(parts, "v1="+hex.EncodeToString(mac(k, ts, body)))
	}
	return strings.Join(parts, ",")
}

func mac(key []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a ZITADEL-Signature header value: its timestamp within
// tolerance of now, and a v1 signature by one of keys over "<t>.<body>".
func Verify(body []byte, header string, keys [][]byte, now time.Time, tolerance time.Duration) error {
	if header == "" {
		return errors.New("events: no signature")
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("events: no timestamp in signature")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return errors.New("events: signature timestamp outside tolerance")
	}
	for _, k := range keys {
		want := mac(k, ts, body)
		for _, s := range sigs {
			if hmac.Equal(s, want) {
				return nil
			}
		}
	}
	return errors.New("events: no valid v1 signature")
}
