// Package telemetry holds tokenguard's OpenTelemetry instruments. It uses the
// OpenTelemetry API only: without a provider installed, every instrument is a
// no-op. Attribute sets are built once, so recording allocates nothing.
package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of every instrument and span.
const ScopeName = "github.com/tokenguard/tokenguard"

// Outcome is a request's decision: the outcome attribute of tokenguard.decisions.
type Outcome uint8

// Outcomes.
const (
	Allowed Outcome = iota
	NoToken
	InvalidRequest
	InvalidToken
	InsufficientScope
	Unavailable
	ServerError
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"allowed", "no_token", "invalid_request", "invalid_token", "insufficient_scope", "unavailable", "error"}

// Level is a cache level.
type Level uint8

// Levels.
const (
	LRU Level = iota
	Shared
	numLevels
)

var levelNames = [numLevels]string{"lru", "shared"}

// LookupResult is the result of a cache lookup.
type LookupResult uint8

// Lookup results.
const (
	Hit   LookupResult = iota
	Miss               // not cached, or cached but no longer fresh
	Stale              // served past the max TTL while the server was down
	numLookupResults
)

var lookupNames = [numLookupResults]string{"hit", "miss", "stale"}

// Result is an introspection call's result.
type Result uint8

// Results.
const (
	Active Result = iota
	Inactive
	ClientAuthRejected
	ServerUnavailable
	Failed
	numResults
)

var resultNames = [numResults]string{"active", "inactive", "client_auth", "unavailable", "error"}

// Kind is what an invalidation named.
type Kind uint8

// Kinds.
const (
	Token Kind = iota
	Subject
	numKinds
)

var kindNames = [numKinds]string{"token", "subject"}

// Source is where a decision's result came from: the source attribute of
// tokenguard.decisions and tokenguard.decision.age.
type Source uint8

// Sources.
const (
	Introspected Source = iota // the authorization server's answer
	Local                      // a JWT access token verified locally
	numSources
)

var sourceNames = [numSources]string{"introspected", "local"}

// Verification is the result of verifying a JWT access token locally.
type Verification uint8

// Verification results.
const (
	Accepted Verification = iota // decided locally: a provisional decision, confirmed in the background
	Refused                      // refused locally: forged, expired, another issuer
	Deferred                     // left to introspection: unknown key, keys unavailable, invalidated, not an access token
	numVerifications
)

var verificationNames = [numVerifications]string{"accepted", "refused", "introspected"}

// Confirmation is the result of the introspection that confirms a local
// decision.
type Confirmation uint8

// Confirmation results.
const (
	Confirmed   Confirmation = iota // the server says active
	Overruled                       // the server says inactive: the token is refused from then on
	Unconfirmed                     // the server could not be asked
	numConfirmations
)

var confirmationNames = [numConfirmations]string{"active", "inactive", "failed"}

// Metrics records what tokenguard does. Create one with [New]. It is safe for
// concurrent use.
type Metrics struct {
	decisions     metric.Int64Counter
	lookups       metric.Int64Counter
	evictions     metric.Int64Counter
	coalesced     metric.Int64Counter
	duration      metric.Float64Histogram
	inFlight      metric.Int64UpDownCounter
	invalidations metric.Int64Counter
	age           metric.Float64Histogram
	verifications metric.Int64Counter
	confirmations metric.Int64Counter
	refreshes     metric.Int64Counter
	tracer        trace.Tracer

	// Option slices built once: passing them with ... allocates nothing,
	// where a variadic literal would escape on every call.
	outcomeOpts [numOutcomes][]metric.AddOption
	sourceOpts  [numOutcomes][numSources][]metric.AddOption
	ageOpts     [numSources][]metric.RecordOption
	verifyOpts  [numVerifications][]metric.AddOption
	confirmOpts [numConfirmations][]metric.AddOption
	refreshOpts [2][]metric.AddOption
	lookupOpts  [numLevels][numLookupResults][]metric.AddOption
	levelOpts   [numLevels][]metric.AddOption
	resultOpts  [numResults][]metric.RecordOption
	kindOpts    [numKinds][]metric.AddOption
}

func set(kv ...string) metric.MeasurementOption {
	attrs := make([]attribute.KeyValue, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		attrs = append(attrs, attribute.String(kv[i], kv[i+1]))
	}
	return metric.WithAttributeSet(attribute.NewSet(attrs...))
}

func add(o metric.MeasurementOption) []metric.AddOption       { return []metric.AddOption{o} }
func record(o metric.MeasurementOption) []metric.RecordOption { return []metric.RecordOption{o} }

// New creates the instruments on mp and tp; nil means the global providers,
// so that instruments start recording once the application installs them.
func New(mp metric.MeterProvider, tp trace.TracerProvider) *Metrics {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	meter := mp.Meter(ScopeName)
	m := &Metrics{tracer: tp.Tracer(ScopeName)}
	// An instrument that fails to be created is a no-op: metrics must never
	// break authentication.
	m.decisions, _ = meter.Int64Counter("tokenguard.decisions", metric.WithDescription("Requests decided, by outcome."))
	m.lookups, _ = meter.Int64Counter("tokenguard.cache.lookups", metric.WithDescription("Cache lookups, by level and result."))
	m.evictions, _ = meter.Int64Counter("tokenguard.cache.evictions", metric.WithDescription("Entries evicted to make room, by level."))
	m.coalesced, _ = meter.Int64Counter("tokenguard.introspection.coalesced", metric.WithDescription("Callers that waited on another caller's introspection instead of making their own."))
	m.duration, _ = meter.Float64Histogram("tokenguard.introspection.duration", metric.WithUnit("s"), metric.WithDescription("Introspection calls to the authorization server, retries included, by result."))
	m.inFlight, _ = meter.Int64UpDownCounter("tokenguard.introspection.in_flight", metric.WithDescription("Introspection calls under way."))
	m.invalidations, _ = meter.Int64Counter("tokenguard.invalidations", metric.WithDescription("Invalidations applied, by kind (token, subject)."))
	m.age, _ = meter.Float64Histogram("tokenguard.decision.age", metric.WithUnit("s"), metric.WithDescription("Age of the cached result a request was decided on, by source (introspected, local): how stale decisions are."))
	m.verifications, _ = meter.Int64Counter("tokenguard.jwt.verifications", metric.WithDescription("JWT access tokens verified locally, by result (accepted, refused, introspected)."))
	m.confirmations, _ = meter.Int64Counter("tokenguard.jwt.confirmations", metric.WithDescription("Introspections that confirmed a local decision, by result (active, inactive, failed)."))
	m.refreshes, _ = meter.Int64Counter("tokenguard.jwks.refreshes", metric.WithDescription("JWKS fetches forced by an unknown key ID, by result (ok, error)."))
	for i, n := range outcomeNames {
		m.outcomeOpts[i] = add(set("outcome", n))
		for j, sn := range sourceNames {
			m.sourceOpts[i][j] = add(set("outcome", n, "source", sn))
		}
	}
	for i, n := range sourceNames {
		m.ageOpts[i] = record(set("source", n))
	}
	for i, n := range verificationNames {
		m.verifyOpts[i] = add(set("result", n))
	}
	for i, n := range confirmationNames {
		m.confirmOpts[i] = add(set("result", n))
	}
	for i, n := range []string{"ok", "error"} {
		m.refreshOpts[i] = add(set("result", n))
	}
	for l, ln := range levelNames {
		m.levelOpts[l] = add(set("level", ln))
		for r, rn := range lookupNames {
			m.lookupOpts[l][r] = add(set("level", ln, "result", rn))
		}
	}
	for i, n := range resultNames {
		m.resultOpts[i] = record(set("result", n))
	}
	for i, n := range kindNames {
		m.kindOpts[i] = add(set("kind", n))
	}
	return m
}

// Decision counts one request's outcome, decided before any result was
// looked up (no token, a malformed request): without a source.
func (m *Metrics) Decision(ctx context.Context, o Outcome) {
	m.decisions.Add(ctx, 1, m.outcomeOpts[o]...)
}

// DecisionFrom counts one request's outcome, decided on a result from src.
func (m *Metrics) DecisionFrom(ctx context.Context, o Outcome, src Source) {
	m.decisions.Add(ctx, 1, m.sourceOpts[o][src]...)
}

// Verified counts a local verification of a JWT access token.
func (m *Metrics) Verified(ctx context.Context, v Verification) {
	m.verifications.Add(ctx, 1, m.verifyOpts[v]...)
}

// Confirmed counts the introspection that confirmed a local decision.
func (m *Metrics) Confirmed(ctx context.Context, c Confirmation) {
	m.confirmations.Add(ctx, 1, m.confirmOpts[c]...)
}

// Refreshed counts a JWKS fetch forced by an unknown key ID.
func (m *Metrics) Refreshed(ctx context.Context, ok bool) {
	i := 0
	if !ok {
		i = 1
	}
	m.refreshes.Add(ctx, 1, m.refreshOpts[i]...)
}

// Lookup counts a cache lookup.
func (m *Metrics) Lookup(ctx context.Context, l Level, r LookupResult) {
	m.lookups.Add(ctx, 1, m.lookupOpts[l][r]...)
}

// Evicted counts an eviction.
func (m *Metrics) Evicted(ctx context.Context, l Level) { m.evictions.Add(ctx, 1, m.levelOpts[l]...) }

// Coalesced counts a caller that shared another's introspection.
func (m *Metrics) Coalesced(ctx context.Context) { m.coalesced.Add(ctx, 1) }

// Age records how old the cached result a request used was, and where it
// came from.
func (m *Metrics) Age(ctx context.Context, d time.Duration, src Source) {
	m.age.Record(ctx, d.Seconds(), m.ageOpts[src]...)
}

// Invalidated counts an invalidation.
func (m *Metrics) Invalidated(ctx context.Context, k Kind) {
	m.invalidations.Add(ctx, 1, m.kindOpts[k]...)
}

// StartIntrospection opens the span of one introspection call and counts it
// in flight; call the returned func with its result when it is done.
func (m *Metrics) StartIntrospection(ctx context.Context, server string) (context.Context, func(Result)) {
	start := time.Now()
	ctx, span := m.tracer.Start(ctx, "tokenguard.introspect", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("server.address", server)))
	m.inFlight.Add(ctx, 1)
	return ctx, func(r Result) {
		m.inFlight.Add(ctx, -1)
		m.duration.Record(ctx, time.Since(start).Seconds(), m.resultOpts[r]...)
		span.SetAttributes(attribute.String("tokenguard.result", resultNames[r]))
		span.End()
	}
}
