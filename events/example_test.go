package events_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/tokenguard/tokenguard/events"
)

func ExampleNewHandler() {
	invalidate := events.InvalidatorFunc(func(subject string) { fmt.Println("invalidate", subject) })
	h, _ := events.NewHandler("the-target-signing-key", invalidate) // pass your *tokenguard.Guard instead

	body := `{"aggregateID":"281474976710656","aggregateType":"user","event_type":"user.locked","event_payload":{}}`
	req := httptest.NewRequest(http.MethodPost, "/zitadel/events", strings.NewReader(body))
	req.Header.Set("ZITADEL-Signature", events.Sign([]byte(body), time.Now(), []byte("the-target-signing-key")))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	fmt.Println(rec.Code)
	// Output:
	// invalidate 281474976710656
	// 200
}
