// Package loopback tells whether a host names this machine, for the rule
// that plain http is allowed on loopback only.
package loopback

import (
	"net"
	"strings"
)

// Host reports whether host (a URL's Hostname: no port, no brackets) is
// localhost, in any case, or a loopback IP address (127.0.0.0/8, ::1).
func Host(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
