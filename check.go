package tokenguard

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tokenguard/tokenguard/clientauth"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/middleware"
)

// ErrCheckSkipped is the error of a [CheckResult] for a check that did not
// run because a check it needs did not pass.
var ErrCheckSkipped = errors.New("tokenguard: skipped")

// MaxClockSkew is the clock skew [Check] tolerates between this machine and
// the authorization server: [middleware.DefaultLeeway], which is what exp
// and nbf checks allow.
const MaxClockSkew = middleware.DefaultLeeway

// CheckResult is the outcome of one check of [Check].
type CheckResult struct {
	// Name is what was checked: "config", "key", "issuer", "client-auth",
	// "clock" or "token".
	Name string
	// Detail says what was found, for a check that passed.
	Detail string
	// Err is nil when the check passed, and otherwise says what is wrong
	// and how to fix it. errors.Is(Err, introspect.ErrUnavailable) reports
	// that the authorization server could not be reached or failed,
	// errors.Is(Err, ErrCheckSkipped) a check that did not run, and for
	// the token check errors.As(Err, new(*middleware.Error)) gives the
	// API's answer: its status (401, 403 or 400 for a refused token) and
	// code.
	Err error
}

// OK reports whether the check passed.
func (r CheckResult) OK() bool { return r.Err == nil }

// String is the check's one-line report: "issuer: ok (...)" or
// "issuer: what is wrong and how to fix it".
func (r CheckResult) String() string {
	if r.Err == nil {
		if r.Detail == "" {
			return r.Name + ": ok"
		}
		return r.Name + ": ok (" + r.Detail + ")"
	}
	msg := strings.Join(strings.Fields(strings.ReplaceAll(r.Err.Error(), "\n", " ")), " ")
	return r.Name + ": " + strings.TrimPrefix(msg, "tokenguard: ")
}

// Check tests cfg against the authorization server the way [New] and a
// request would use it, and reports one result per check, in this order:
//
//   - config: Issuer and ProjectID are set, the issuer (and
//     Config.InternalURL) are URLs New accepts;
//   - key: the credentials load, and a key is the API application's (type
//     "application"), not a service user's;
//   - issuer: discovery answers and names Issuer exactly;
//   - client-auth: the server accepts this API's client authentication: a
//     random token is introspected and must come back active:false, not as
//     a client authentication error;
//   - clock: the server's Date header agrees with this machine's clock to
//     within [MaxClockSkew];
//   - token, only when token is not empty: the verdict the API would give
//     on a request with that bearer token, and why.
//
// A check that needs another one that failed is reported with
// [ErrCheckSkipped]. Check never panics on a bad cfg, logs nothing and
// keeps no state; ctx bounds the whole run. Call it at start (and log the
// results that are not OK), or use the CLI: tokenguard doctor.
func Check(ctx context.Context, cfg Config, token string) []CheckResult {
	var results []CheckResult
	add := func(name, detail string, err error) bool {
		results = append(results, CheckResult{Name: name, Detail: detail, Err: err})
		return err == nil
	}
	skip := func(name, needs string) {
		add(name, "", fmt.Errorf("%w: needs the %s check to pass", ErrCheckSkipped, needs))
	}

	hc, err := checkConfig(cfg)
	configOK := add("config", configDetail(cfg), err)
	key, err := loadKey(cfg)
	keyOK := add("key", keyDetail(cfg, key), keyProblem(err))
	if !configOK {
		for _, name := range []string{"issuer", "client-auth", "clock", "token"} {
			if name != "token" || token != "" {
				skip(name, "config")
			}
		}
		return results
	}
	clock := &dateRecorder{base: hc.Transport}
	if clock.base == nil {
		clock.base = http.DefaultTransport
	}
	cp := *hc
	cp.Transport = clock
	hc = &cp
	if cfg.HTTPClient == nil || strings.HasPrefix(cfg.InternalURL, "https:") {
		defer hc.CloseIdleConnections() // the transport is Check's own (for https, a clone): leave no idle connections behind
	}

	endpoint := cfg.IntrospectionEndpoint
	doc, err := introspect.Discover(ctx, cfg.Issuer, hc)
	if err == nil {
		if endpoint == "" {
			endpoint = doc.IntrospectionEndpoint
		}
		detail := fmt.Sprintf("discovery names %s; introspection at %s", doc.Issuer, endpoint)
		if cfg.InternalURL != "" {
			detail += ", reached at " + cfg.InternalURL
		}
		add("issuer", detail, nil)
	} else {
		add("issuer", "", issuerProblem(cfg, err))
	}

	var guard *Guard
	switch {
	case !keyOK:
		skip("client-auth", "key")
	case endpoint == "":
		skip("client-auth", "issuer")
	default:
		guard, err = checkGuard(ctx, cfg, hc, endpoint)
		if err == nil {
			err = probeClientAuth(ctx, guard)
		}
		add("client-auth", clientAuthDetail(cfg, key), clientAuthProblem(err))
		if err != nil {
			guard = nil
		}
	}

	if skew, at, ok := clock.skew(); !ok {
		skip("clock", "issuer")
	} else {
		add("clock", clockDetail(skew), clockProblem(skew, at))
	}

	if token != "" {
		if guard == nil {
			skip("token", "client-auth")
		} else {
			detail, err := checkToken(ctx, guard, cfg, token)
			add("token", detail, err)
		}
	}
	return results
}

// checkConfig applies New's checks of cfg that need no network, and
// returns the HTTP client New would use.
func checkConfig(cfg Config) (*http.Client, error) {
	var missing []string
	if cfg.Issuer == "" {
		missing = append(missing, "Issuer (the issuer URL exactly as ZITADEL's discovery states it)")
	}
	if cfg.ProjectID == "" {
		missing = append(missing, "ProjectID (the API's project ID in the ZITADEL console)")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("tokenguard: set Config.%s", strings.Join(missing, " and Config."))
	}
	if err := checkIssuer(cfg.Issuer, cfg.InsecureAllowHTTP); err != nil {
		return nil, err
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: introspect.NewTransport()}
	}
	return internalClient(cfg, hc)
}

func configDetail(cfg Config) string {
	d := "issuer " + cfg.Issuer + ", project " + cfg.ProjectID
	if cfg.InternalURL != "" {
		d += ", internal URL " + cfg.InternalURL
	}
	return d
}

func keyDetail(cfg Config, key *clientauth.Key) string {
	if key == nil {
		return "client_secret_basic as " + cfg.ClientID
	}
	return fmt.Sprintf("application key %s of client %s", key.KeyID, key.ClientID)
}

// keyProblem adds to a key error how to fix it.
func keyProblem(err error) error {
	const download = "create a key for the API application in the ZITADEL console (the project, the API application, Keys, New) and pass the downloaded JSON file"
	var kerr *clientauth.KeyFileError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w; check the path, or %s", err, download)
	case errors.As(err, &kerr):
		return fmt.Errorf("%w; this is not a ZITADEL key file as downloaded: %s", err, download)
	}
	return err
}

// issuerProblem adds to a discovery error how to fix it.
func issuerProblem(cfg Config, err error) error {
	switch {
	case errors.Is(err, introspect.ErrUnavailable):
		where := "the issuer"
		if cfg.InternalURL != "" {
			where = "the internal URL " + cfg.InternalURL
		}
		return fmt.Errorf("tokenguard: the authorization server could not be reached at %s: %w", where, err)
	case strings.HasSuffix(cfg.Issuer, "/"):
		return fmt.Errorf("tokenguard: %w; drop the trailing slash from the issuer", err)
	}
	return fmt.Errorf("tokenguard: %w; the issuer must be the URL ZITADEL shows in the console (its custom domain, if it has one), with no trailing slash", err)
}

// checkGuard builds the guard New would for cfg on hc, which already
// reaches the internal URL, without a second discovery.
func checkGuard(ctx context.Context, cfg Config, hc *http.Client, endpoint string) (*Guard, error) {
	cfg.HTTPClient, cfg.IntrospectionEndpoint = hc, endpoint
	cfg.InternalURL, cfg.InternalTLSServerName = "", ""
	return New(ctx, cfg, middleware.WithLogger(slog.New(slog.DiscardHandler)))
}

// probeClientAuth introspects a random token: a server that authenticated
// this API answers active:false.
func probeClientAuth(ctx context.Context, g *Guard) error {
	var b [24]byte
	_, _ = rand.Read(b[:])
	_, err := g.Client().Introspect(ctx, "tokenguard-check-"+base64.RawURLEncoding.EncodeToString(b[:]))
	switch {
	case errors.Is(err, introspect.ErrInactive):
		return nil
	case err == nil:
		return errors.New("tokenguard: the server says a random token is active: is the introspection endpoint really ZITADEL's (or an RFC 7662 server's)?")
	}
	return err
}

func clientAuthDetail(cfg Config, key *clientauth.Key) string {
	who := cfg.ClientID
	if key != nil {
		who = key.ClientID
	}
	return "authenticated as " + who + "; a random token is inactive"
}

func clientAuthProblem(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, introspect.ErrUnavailable):
		return fmt.Errorf("tokenguard: the introspection endpoint could not be reached: %w", err)
	case errors.Is(err, introspect.ErrClientAuth):
		return fmt.Errorf("tokenguard: the server rejected this API's client authentication (%w): the key was deleted, expired, or belongs to another instance or application; create a new key for the API application and check the issuer", err)
	}
	return err
}

// dateRecorder remembers the Date header of the last answer and when it
// was asked and received, to measure the clock skew.
type dateRecorder struct {
	base http.RoundTripper

	mu               sync.Mutex // guards date, sent and received
	date, sent, recv time.Time
}

// CloseIdleConnections closes the idle connections of the transport
// underneath, for http.Client.CloseIdleConnections.
func (d *dateRecorder) CloseIdleConnections() {
	if c, ok := d.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (d *dateRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	sent := time.Now()
	resp, err := d.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if date, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
		d.mu.Lock()
		d.date, d.sent, d.recv = date, sent, time.Now()
		d.mu.Unlock()
	}
	return resp, nil
}

// skew returns the server's clock minus this machine's, as far as the
// one-second Date header and the round trip let it be known: 0 when they
// may agree to within MaxClockSkew, and otherwise the smallest skew
// consistent with what was seen. ok is false without a dated answer.
func (d *dateRecorder) skew() (skew time.Duration, at time.Time, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.date.IsZero() {
		return 0, time.Time{}, false
	}
	// The server wrote Date, truncated to the second, between sent and recv.
	lo := d.date.Sub(d.recv)                  // the skew is at least this
	hi := d.date.Add(time.Second).Sub(d.sent) // and at most this
	switch {
	case lo > MaxClockSkew:
		return lo, d.date, true
	case hi < -MaxClockSkew:
		return hi, d.date, true
	}
	return 0, d.date, true
}

func clockDetail(skew time.Duration) string {
	if skew != 0 {
		return ""
	}
	return fmt.Sprintf("the server's Date agrees with this machine's clock to within %v", MaxClockSkew)
}

func clockProblem(skew time.Duration, date time.Time) error {
	if skew == 0 {
		return nil
	}
	dir, d := "behind", skew
	if skew < 0 {
		dir, d = "ahead of", -skew
	}
	return fmt.Errorf("tokenguard: this machine's clock is at least %v %s the server's (its Date header said %s): tokens would be refused as expired or not yet valid, and client assertions as expired; synchronize the clock (NTP)",
		d.Round(time.Second), dir, date.UTC().Format(time.RFC3339))
}

// checkToken gives the API's verdict on token, as tokenguard inspect does.
func checkToken(ctx context.Context, g *Guard, cfg Config, token string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	authCtx, e := g.Authenticate(req) // a *middleware.Error: compared with nil as such, never stored in an error first
	if e == nil {
		claims, ok := middleware.ClaimsFromContext(authCtx)
		if !ok {
			return "", errors.New("tokenguard: the request was let through without claims")
		}
		detail := "accepted: subject " + claims.Subject
		if names := claims.Roles.Names(); len(names) > 0 {
			detail += ", roles " + strings.Join(names, ", ")
		}
		if !claims.Expiry.IsZero() {
			detail += ", expires " + claims.Expiry.UTC().Format(time.RFC3339)
		}
		return detail, nil
	}
	switch e.StatusCode {
	case http.StatusServiceUnavailable:
		return "", fmt.Errorf("tokenguard: the authorization server is unavailable: %w", e)
	case http.StatusInternalServerError:
		return "", fmt.Errorf("tokenguard: introspection failed (%w): check the key and the issuer", e)
	}
	msg := fmt.Sprintf("tokenguard: the API would refuse it with %d %s: %s%s", e.StatusCode, e.Code, e.Description, tokenHint(e, token, cfg))
	return "", &explained{msg: msg, cause: e}
}

// explained is an error whose message is written for the user in full,
// with the cause kept for errors.Is and errors.As.
type explained struct {
	msg   string
	cause error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.cause }

// tokenHint says what to change about a refused token, as tokenguard
// inspect explains it; the descriptions of inactive and wrong-audience
// tokens already name the project audience scope.
func tokenHint(e *middleware.Error, token string, cfg Config) string {
	scope := clientauth.ProjectAudienceScope(cfg.ProjectID)
	switch {
	case errors.Is(e, middleware.ErrInactive):
		hint := ""
		if iss := jwtIssuer(token); iss != "" && iss != cfg.Issuer {
			hint = "; it was issued by " + iss + ", not by " + cfg.Issuer
		}
		if !strings.Contains(e.Description, scope) {
			hint += "; request it with scope " + scope
		}
		return hint + "; or it expired or was revoked: get a new one"
	case errors.Is(e, middleware.ErrAudience):
		if !strings.Contains(e.Description, scope) {
			return "; request it with scope " + scope
		}
	case errors.Is(e, middleware.ErrExpired):
		return "; get a new token"
	case errors.Is(e, middleware.ErrNotYetValid):
		return "; check the clocks of this machine and the server"
	case errors.Is(e, middleware.ErrForbidden):
		return "; grant the role to the user in project " + cfg.ProjectID
	case errors.Is(e, middleware.ErrMalformed):
		return "; pass the access_token value only"
	}
	return ""
}

// jwtIssuer is the unverified iss of a JWT, for explanations only; "" when
// token is not a JWT.
func jwtIssuer(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Issuer string `json:"iss"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return ""
	}
	return c.Issuer
}
