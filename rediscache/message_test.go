package rediscache

import (
	"bytes"
	"testing"
)

// FuzzOpenMessage: whatever arrives on the channel, opening it never panics,
// and only what a holder of the secret sealed for this channel opens.
func FuzzOpenMessage(f *testing.F) {
	k := derive(bytes.Repeat([]byte{1}, MinSecretSize), "api", DefaultPrefix)
	other := derive(bytes.Repeat([]byte{2}, MinSecretSize), "api", DefaultPrefix)
	for _, m := range []message{{kind: msgSubject, at: 1, data: []byte("alice")}, {kind: msgKey, at: 2, data: make([]byte, 32)}} {
		p, _ := k.sealMessage(m)
		f.Add(p)
		q, _ := other.sealMessage(m)
		f.Add(q)
	}
	f.Add([]byte("k:00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := k.openMessage(payload)
		if err != nil {
			return
		}
		if p, _ := k.sealMessage(m); len(p) != len(payload) {
			t.Errorf("opened a %d-byte payload that seals to %d bytes", len(payload), len(p))
		}
	})
}

func TestMessageRoundTrip(t *testing.T) {
	t.Parallel()
	k := derive(bytes.Repeat([]byte{1}, MinSecretSize), "api", DefaultPrefix)
	foreign := derive(bytes.Repeat([]byte{1}, MinSecretSize), "another api", DefaultPrefix)
	for _, m := range []message{
		{kind: msgSubject, at: 1, data: []byte("alice")},
		{kind: msgTokenID, at: -5, data: bytes.Repeat([]byte{'j'}, 32)}, // 32 bytes, as a cache key is
		{kind: msgKey, at: 1 << 62, data: bytes.Repeat([]byte{9}, 32)},
		{kind: msgSubject, at: 7, data: bytes.Repeat([]byte{'s'}, msgMaxData)},
	} {
		p, err := k.sealMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		if len(p)%msgPad != (1+k.msg.NonceSize()+k.msg.Overhead())%msgPad {
			t.Errorf("sealed %d bytes of data into %d bytes: not padded", len(m.data), len(p))
		}
		got, err := k.openMessage(p)
		if err != nil || got.kind != m.kind || got.at != m.at || !bytes.Equal(got.data, m.data) {
			t.Errorf("openMessage(sealMessage(%c, %d bytes)) = %c, %d bytes, %v", m.kind, len(m.data), got.kind, len(got.data), err)
		}
		if _, err := foreign.openMessage(p); err == nil {
			t.Errorf("another namespace opened a message")
		}
		p[len(p)-1] ^= 1
		if _, err := k.openMessage(p); err == nil {
			t.Errorf("a tampered message opened")
		}
	}
}
