package loopback

import "testing"

func TestHost(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.3.4.5": true, "::1": true,
		"": false, "localhost.evil.test": false, "127.0.0.1.nip.io": false, "10.0.0.1": false, "[::1]": false, "auth.example.com": false,
	} {
		if got := Host(host); got != want {
			t.Errorf("Host(%q) = %v, want %v", host, got, want)
		}
	}
}
