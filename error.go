package apiusage

import (
	"errors"
	"fmt"
)

// Error codes. They are the contract's ErrorBody codes, so that a domain error
// maps to the wire without a table of its own.
const (
	CodeBadRequest      = "bad.request"
	CodeAuthRequired    = "authentication.required"
	CodeBadCredentials  = "bad.credentials"
	CodeMissingPerms    = "missing.any.permissions"
	CodeNotFound        = "not.found"
	CodeConflict        = "conflict"
	CodeTooLarge        = "request.entity.too.large"
	CodeTooManyRequests = "too.many.requests"
	CodeInternal        = "internal.server.error"
	CodeUnavailable     = "service.unavailable"
)

// Error is a domain error: a contract code and a message meant for the caller.
// Any error that is not an *Error (after unwrapping) is internal.
type Error struct {
	Code    string
	Message string
	// Params are the message's parameters, written to the ErrorBody's
	// messageParams (for example the permissions a caller lacks).
	Params map[string]string
}

// Error implements error.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or
// CodeInternal when there is none. A nil err has no code.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the caller-facing message of err: the messages of every
// *Error joined in it, or a generic text for an internal error, whose details
// belong in the server log and not in a response.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	if msgs := errorMessages(err); len(msgs) > 0 {
		out := msgs[0]
		for _, m := range msgs[1:] {
			out += "; " + m
		}
		return out
	}
	return "internal server error"
}

func errorMessages(err error) []string {
	switch e := err.(type) {
	case *Error:
		return []string{e.Message}
	case interface{ Unwrap() []error }:
		var out []string
		for _, inner := range e.Unwrap() {
			out = append(out, errorMessages(inner)...)
		}
		return out
	case interface{ Unwrap() error }:
		return errorMessages(e.Unwrap())
	}
	return nil
}

// ErrNotFound is returned by lookups of things that do not exist or that the
// caller may not see; the two are deliberately indistinguishable.
var ErrNotFound = &Error{Code: CodeNotFound, Message: "not found"}
