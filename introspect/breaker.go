package introspect

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// breaker is a consecutive-failure circuit breaker.
type breaker struct {
	threshold int
	cooldown  time.Duration

	mu        sync.Mutex // guards the fields below
	failures  int
	openUntil time.Time
	probing   bool
}

// allow reports whether a call may go ahead, and whether it is the one call
// that probes the server once the cooldown is over. Every call it lets
// through must end in record or, if the server had no say in how it ended,
// in release.
func (b *breaker) allow(now time.Time) (probe bool, _ error) {
	if b.threshold == 0 {
		return false, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Before(b.openUntil) {
		return false, &UnavailableError{Reason: fmt.Sprintf("circuit breaker open after %d failures in a row", b.failures), RetryAfter: b.openUntil.Sub(now)}
	}
	if b.failures >= b.threshold { // cooldown over: let one call probe
		if b.probing {
			return false, &UnavailableError{Reason: "circuit breaker probing the server", RetryAfter: time.Second}
		}
		b.probing = true
		return true, nil
	}
	return false, nil
}

// record counts a call's outcome: an answer of any kind from the server
// closes the breaker; threshold failures in a row open it.
func (b *breaker) record(probe bool, err error, now time.Time) {
	if b.threshold == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
	}
	if err == nil || !errors.Is(err, ErrUnavailable) {
		b.failures, b.openUntil = 0, time.Time{}
		return
	}
	b.failures++
	if b.failures >= b.threshold {
		b.openUntil = now.Add(b.cooldown)
	}
}

// release ends a call that says nothing about the server (its caller hung
// up, or no in-flight slot was free) without counting it: if it was the
// probe, the next call probes instead.
func (b *breaker) release(probe bool) {
	if !probe {
		return
	}
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}
