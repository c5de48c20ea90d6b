package model

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies an error for the sender. The values are the gRPC status
// codes that Argo's gateway writes in its error bodies, so Argo clients that
// read "code" keep working.
type Code int

// The codes wfevents sends.
const (
	CodeInvalid           Code = 3  // the request is malformed
	CodeDeadlineExceeded  Code = 4  // the work did not finish in time
	CodeNotFound          Code = 5  // no such route or resource
	CodeAlreadyExists     Code = 6  // a resource of that name exists
	CodePermissionDenied  Code = 7  // authenticated but not allowed
	CodeResourceExhausted Code = 8  // the body is over the size limit
	CodeUnimplemented     Code = 12 // wrong method for the route
	CodeInternal          Code = 13 // a fault on our side
	CodeUnavailable       Code = 14 // the pipeline is full or shutting down
	CodeUnauthenticated   Code = 16 // the token is missing or unknown
)

// Error is an error with two audiences: Message is safe to send to the
// client, and Err is the internal cause, which only logs see.
type Error struct {
	Code    Code
	Message string
	Err     error

	// RetryAfter, when positive, is how long the source of a transient
	// error asked the caller to wait before retrying.
	RetryAfter time.Duration
}

// Error returns the message followed by the internal cause, for logs.
func (e *Error) Error() string {
	if e.Err == nil {
		return e.Message
	}
	return fmt.Sprintf("%s: %v", e.Message, e.Err)
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an Error with a formatted message and no internal cause.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first Error in err's chain, or
// CodeInternal when there is none.
func ErrorCode(err error) Code {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the client-safe message of the first Error in err's
// chain, or a generic message when there is none, so internal causes never
// reach the client.
func ErrorMessage(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Message
	}
	return "internal error"
}
