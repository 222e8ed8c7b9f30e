package client

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/apiusage/apiusage"
)

// CorrelationHeader is the response header that carries a request's
// correlation id, the ErrorBody's contextId.
const CorrelationHeader = "ININ-Correlation-Id"

// ErrorBody is the body of every error response of the Usage API.
type ErrorBody struct {
	Message           string            `json:"message"`
	Code              string            `json:"code"`
	Status            int               `json:"status"`
	MessageWithParams string            `json:"messageWithParams,omitempty"`
	MessageParams     map[string]string `json:"messageParams,omitempty"`
	ContextID         string            `json:"contextId,omitempty"`
	Details           []ErrorDetail     `json:"details,omitempty"`
	Errors            []ErrorBody       `json:"errors,omitempty"`
}

// ErrorDetail is one entry of an ErrorBody's details.
type ErrorDetail struct {
	ErrorCode  string `json:"errorCode,omitempty"`
	FieldName  string `json:"fieldName,omitempty"`
	EntityID   string `json:"entityId,omitempty"`
	EntityName string `json:"entityName,omitempty"`
}

// Error is an error answer of the server: any response with a status outside
// 2xx. Match it with errors.As; errors.Is(err, apiusage.ErrNotFound) and
// apiusage.ErrorCode(err) work on it too, through its code.
type Error struct {
	// StatusCode is the HTTP status of the response.
	StatusCode int
	// CorrelationID identifies the request in the server's log: the
	// ININ-Correlation-Id header, or the body's contextId.
	CorrelationID string
	// RetryAfter is the wait the server asked for (429, 503), or zero.
	RetryAfter time.Duration
	// Body is the response's ErrorBody. An OAuth error of the login host
	// ({"error": "invalid_client", ...}) has its error as the Code and its
	// description as the Message; a body that is no JSON at all gets the
	// status text as its Message.
	Body ErrorBody
}

// Error implements error: the code, the server's message, the status and
// the correlation id, everything a user needs to report a problem.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Body.Code != "" {
		b.WriteString(e.Body.Code)
		b.WriteString(": ")
	}
	msg := e.Body.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	b.WriteString(msg)
	fmt.Fprintf(&b, " (status %d", e.StatusCode)
	if e.CorrelationID != "" {
		b.WriteString(", correlation id ")
		b.WriteString(e.CorrelationID)
	}
	b.WriteString(")")
	return b.String()
}

// Unwrap returns the domain error of the answer, so that apiusage.ErrorCode
// and errors.As with *apiusage.Error see the server's code and message.
func (e *Error) Unwrap() error {
	return &apiusage.Error{Code: e.Body.Code, Message: e.Body.Message, Params: e.Body.MessageParams}
}

// Is reports whether target is a domain error with e's code, so that
// errors.Is(err, apiusage.ErrNotFound) holds for a 404.
func (e *Error) Is(target error) bool {
	t, ok := target.(*apiusage.Error)
	return ok && t.Code != "" && t.Code == e.Body.Code
}

// oauthError is the error body of the login host.
type oauthError struct {
	Error            string `json:"error"`
	Description      string `json:"description"`
	ErrorDescription string `json:"error_description"`
}

// newError reads an error response.
func newError(resp *http.Response) *Error {
	e := &Error{
		StatusCode:    resp.StatusCode,
		CorrelationID: resp.Header.Get(CorrelationHeader),
		RetryAfter:    parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	var body struct {
		ErrorBody
		oauthError
	}
	if json.Unmarshal(raw, &body) == nil {
		e.Body = body.ErrorBody
		if e.Body.Code == "" && body.oauthError.Error != "" {
			e.Body.Code = body.oauthError.Error
			e.Body.Message = body.ErrorDescription
			if e.Body.Message == "" {
				e.Body.Message = body.Description
			}
		}
	} else if text := strings.TrimSpace(string(raw)); text != "" && len(text) < 512 {
		// A proxy in front of the server answers in plain text or HTML;
		// a short text is still the best explanation there is.
		e.Body.Message = text
	}
	if e.Body.Status == 0 {
		e.Body.Status = resp.StatusCode
	}
	if e.CorrelationID == "" {
		e.CorrelationID = e.Body.ContextID
	}
	return e
}

// tokenError is a failure to get an access token. Fetching is retried on its
// own, so the call that needed the token does not retry again.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "get access token: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }
