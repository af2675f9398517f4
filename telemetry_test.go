package tokenguard_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tokenguard/tokenguard"
	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/internal/fakeas"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
)

// points flattens collected metrics into "name{k=v,...}" -> value (sums) or
// count (histograms).
func points(t *testing.T, r *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	key := func(name string, s attribute.Set) string {
		var kv []string
		for _, a := range s.ToSlice() {
			kv = append(kv, string(a.Key)+"="+a.Value.String())
		}
		return name + "{" + strings.Join(kv, ",") + "}"
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)] = p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)] = int64(p.Count)
				}
			}
		}
	}
	return out
}

func TestMetricsMatchTheRequests(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	as := fakeas.Start()
	t.Cleanup(as.Close)
	keyJSON, _ := as.NewApp(project)
	g, err := tokenguard.New(context.Background(), tokenguard.Config{Issuer: as.Issuer, KeyFile: writeKey(t, keyJSON), ProjectID: project,
		IntrospectOptions: []introspect.Option{introspect.WithMeterProvider(mp), introspect.WithTracerProvider(tp)}},
		discardLogs(), middleware.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	api, admin := g.Wrap(ok), g.Require(middleware.Role("admin"))(ok)
	good := as.Mint(fakeas.Token{Subject: "alice", Audience: []string{project}})
	for range 3 {
		serve(api, good) // 1 miss, 2 hits
	}
	serve(admin, good)                                                          // hit, 403
	serve(api, "")                                                              // "Bearer " alone: invalid_request
	api.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)) // no token
	serve(api, "unknown")                                                       // miss, inactive, 401
	serve(api, "unknown")                                                       // negative-cache hit, 401
	as.SetDelay(100 * time.Millisecond)                                         // keep the flight open
	stampede := as.Mint(fakeas.Token{Subject: "bob", Audience: []string{project}})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { serve(api, stampede) })
	}
	wg.Wait()
	g.InvalidateSubject("alice")

	got := points(t, reader)
	want := map[string]int64{
		"tokenguard.decisions{outcome=allowed,source=introspected}":            3 + 8,
		"tokenguard.decisions{outcome=insufficient_scope,source=introspected}": 1,
		"tokenguard.decisions{outcome=no_token}":                               1,
		"tokenguard.decisions{outcome=invalid_request}":                        1,
		"tokenguard.decisions{outcome=invalid_token,source=introspected}":      2,
		"tokenguard.cache.lookups{level=lru,result=hit}":                       2 + 1 + 1,
		"tokenguard.cache.lookups{level=lru,result=miss}":                      1 + 1 + 8,
		"tokenguard.introspection.duration{result=active}":                     2,
		"tokenguard.introspection.duration{result=inactive}":                   1,
		"tokenguard.introspection.coalesced{}":                                 7,
		"tokenguard.introspection.in_flight{}":                                 0,
		"tokenguard.invalidations{kind=subject}":                               1,
		"tokenguard.decision.age{source=introspected}":                         3, // the active hits
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
	ended := spans.Ended()
	if len(ended) != 3 {
		t.Errorf("%d introspection spans, want 3", len(ended))
	}
	for _, s := range ended {
		for _, a := range s.Attributes() {
			if strings.Contains(a.Value.String(), good) || strings.Contains(a.Value.String(), stampede) {
				t.Errorf("span %s carries a token in %s", s.Name(), a.Key)
			}
		}
	}
}

// TestIntrospectionCarriesTraceContext is not parallel: it sets the global
// propagator, as an application does.
func TestIntrospectionCarriesTraceContext(t *testing.T) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	defer otel.SetTextMapPropagator(prev)
	tp := sdktrace.NewTracerProvider()
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("traceparent")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":false}`))
	}))
	t.Cleanup(srv.Close)
	c, err := introspect.New(srv.URL, clientauth.ClientSecretBasic{ClientID: "a", Secret: "b"},
		introspect.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Introspect(context.Background(), "tok")
	if !strings.HasPrefix(got, "00-") {
		t.Errorf("traceparent = %q, want the introspection span's trace context", got)
	}
}
