package grpcguard

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tokenguard/tokenguard/middleware"
)

// ErrorInfoDomain is the domain of the google.rpc.ErrorInfo details that
// [Status] adds.
const ErrorInfoDomain = "tokenguard"

func errorf(format string, args ...any) error {
	return fmt.Errorf("grpcguard: "+format, args...)
}

// Code returns the gRPC code for a refusal by the core: InvalidArgument for
// 400, Unauthenticated for 401, PermissionDenied for 403, Unavailable for
// 503 and Internal for anything else (500).
func Code(e *middleware.Error) codes.Code {
	switch e.StatusCode {
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	}
	return codes.Internal
}

// Status returns the status that the interceptors answer for e: the code of
// [Code], e.Description as the message (written for the client: no token,
// no upstream detail), and details: google.rpc.RetryInfo with e.RetryAfter
// (default [middleware.DefaultRetryAfter]) for Unavailable,
// google.rpc.ErrorInfo with the RFC 6750 error code as reason for
// InvalidArgument, Unauthenticated and PermissionDenied. Internal errors say
// "internal error" and nothing more.
func Status(e *middleware.Error) *status.Status {
	code := Code(e)
	msg := e.Description
	if code == codes.Internal || msg == "" {
		msg = "internal error"
		if code == codes.Unauthenticated {
			msg = "missing bearer token"
		}
	}
	st := status.New(code, msg)
	var detail *status.Status
	var err error
	switch code {
	case codes.Unavailable:
		ra := e.RetryAfter
		if ra <= 0 {
			ra = middleware.DefaultRetryAfter
		}
		detail, err = st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(ra)})
	case codes.InvalidArgument, codes.Unauthenticated, codes.PermissionDenied:
		if e.Code == "" {
			return st // no token: nothing more to say
		}
		info := &errdetails.ErrorInfo{Reason: strings.ToUpper(e.Code), Domain: ErrorInfoDomain}
		if e.Scope != "" {
			info.Metadata = map[string]string{"scope": e.Scope}
		}
		detail, err = st.WithDetails(info)
	default:
		return st
	}
	if err != nil { // cannot happen with these messages
		return st
	}
	return detail
}

// statusOf turns an error of a [TokenFunc] into the status error to answer.
func statusOf(err error) error {
	var e *middleware.Error
	if errors.As(err, &e) {
		return Status(e).Err()
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.InvalidArgument, "malformed credentials")
}
