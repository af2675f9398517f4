package exampleapp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tokenguard/tokenguard/middleware"
)

// EventInterval is how often the GET /api/events stream sends a tick.
const EventInterval = 100 * time.Millisecond

// Events serves GET /api/events behind a watching middleware
// (middleware.Middleware.Stream, or Watch in a framework's adapter): a
// Server-Sent Events stream of "data: tick" every [EventInterval], the
// first at once, until the request's context ends: the client left, or the
// token expired or was invalidated. In the last two cases it writes an SSE
// comment saying why and ends the response; the status went out with the
// first tick, so the end of the stream is what the client sees.
func Events(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // no proxy buffering (nginx)
	t := time.NewTicker(EventInterval)
	defer t.Stop()
	for {
		if _, err := io.WriteString(w, "data: tick\n\n"); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			var e *middleware.Error
			if errors.As(context.Cause(ctx), &e) {
				_, _ = io.WriteString(w, ": "+strings.NewReplacer("\r", " ", "\n", " ").Replace(e.Description)+"\n\n")
				_ = rc.Flush()
			}
			return
		case <-t.C:
		}
	}
}
