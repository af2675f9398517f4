package events

import (
	"sync"
	"time"
)

// memoSize bounds each memo: the latest IDs a Handler remembers.
const memoSize = 10_000

// memo maps IDs to user IDs and forgets the oldest first once it holds
// memoSize. It is safe for concurrent use.
type memo struct {
	mu    sync.Mutex        // guards m, order and next
	m     map[string]string // ID -> user ID
	order []string          // the keys of m, oldest at next once full
	next  int
}

func (m *memo) put(id, user string) {
	if id == "" || user == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = make(map[string]string)
	}
	if _, ok := m.m[id]; ok {
		m.m[id] = user
		return
	}
	if len(m.order) < memoSize {
		m.order = append(m.order, id)
	} else {
		delete(m.m, m.order[m.next])
		m.order[m.next] = id
		m.next = (m.next + 1) % memoSize
	}
	m.m[id] = user
}

func (m *memo) get(id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m[id]
}

// limiter lets one log line through per second and counts the others. It
// is safe for concurrent use.
type limiter struct {
	mu         sync.Mutex // guards last and suppressed
	last       time.Time
	suppressed int
}

// allow reports whether a line may be logged at now, and how many were
// left out since the last one that was.
func (l *limiter) allow(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := now.Sub(l.last); !l.last.IsZero() && d >= 0 && d < time.Second {
		l.suppressed++
		return false, 0
	}
	l.last, suppressed, l.suppressed = now, l.suppressed, 0
	return true, suppressed
}
