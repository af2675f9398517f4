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

func (b *breaker) allow(now time.Time) error {
	if b.threshold == 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Before(b.openUntil) {
		return &UnavailableError{Reason: fmt.Sprintf("circuit breaker open after %d failures in a row", b.failures), RetryAfter: b.openUntil.Sub(now)}
	}
	if b.failures >= b.threshold { // cooldown over: let one call probe
		if b.probing {
			return &UnavailableError{Reason: "circuit breaker probing the server", RetryAfter: time.Second}
		}
		b.probing = true
	}
	return nil
}

// record counts a call's outcome: an answer of any kind from the server
// closes the breaker; threshold failures in a row open it.
func (b *breaker) record(err error, now time.Time) {
	if b.threshold == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
	if err == nil || !errors.Is(err, ErrUnavailable) {
		b.failures, b.openUntil = 0, time.Time{}
		return
	}
	b.failures++
	if b.failures >= b.threshold {
		b.openUntil = now.Add(b.cooldown)
	}
}
