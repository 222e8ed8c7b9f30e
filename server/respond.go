package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/apiusage/apiusage"
)

// errorBody is the contract's ErrorBody.
type errorBody struct {
	Message           string            `json:"message"`
	Code              string            `json:"code"`
	Status            int               `json:"status"`
	MessageWithParams string            `json:"messageWithParams"`
	MessageParams     map[string]string `json:"messageParams"`
	ContextID         string            `json:"contextId"`
	Details           []any             `json:"details"`
	Errors            []errorBody       `json:"errors"`
}

// statusOf maps a domain error code to its HTTP status, as the contract's
// error table does. A code it does not know is internal.
func statusOf(code string) int {
	switch code {
	case apiusage.CodeBadRequest:
		return http.StatusBadRequest
	case apiusage.CodeAuthRequired, apiusage.CodeBadCredentials:
		return http.StatusUnauthorized
	case apiusage.CodeMissingPerms:
		return http.StatusForbidden
	case apiusage.CodeNotFound:
		return http.StatusNotFound
	case apiusage.CodeConflict:
		return http.StatusConflict
	case apiusage.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case apiusage.CodeTooManyRequests:
		return http.StatusTooManyRequests
	case apiusage.CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// retryAfterSeconds is the Retry-After of a 429. Executions take well under a
// second on the embedded store, so a second is long enough for a slot to free
// up and short enough not to stall an SDK's retry loop.
const retryAfterSeconds = "1"

// writeJSON is the one place that encodes a response body.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, body any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if hb, ok := body.(headerBody); ok {
		hb.setHeaders(h)
	}
	if raw, ok := body.(resultsBody); ok {
		if raw.done != nil {
			defer raw.done()
		}
		// Encoded by hand: a length rather than HTTP chunks, and the
		// bytes written as they are (or as stream encodes them).
		if raw.stream != nil {
			h.Set("Content-Length", strconv.Itoa(raw.n))
			w.WriteHeader(status)
			if err := raw.stream(w); err != nil {
				s.log.Debug("write response", "contextId", contextID(r), "err", err)
			}
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(raw.b)))
		w.WriteHeader(status)
		if _, err := w.Write(raw.b); err != nil {
			s.log.Debug("write response", "contextId", contextID(r), "err", err)
		}
		return
	}
	w.WriteHeader(status)
	if body == nil {
		return
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		// The status is sent; all that is left is to tell the operator.
		s.log.Debug("write response", "contextId", contextID(r), "err", err)
	}
}

// headerBody is a response body that also sets response headers.
type headerBody interface{ setHeaders(http.Header) }

// writeError is the one place that turns an error into the contract's
// ErrorBody. Any error that is not an *apiusage.Error is internal: it is
// logged with the request's contextId and answered with a generic message.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := apiusage.ErrorCode(err)
	status := statusOf(code)
	body := errorBody{
		Code:          code,
		Status:        status,
		MessageParams: map[string]string{},
		ContextID:     contextID(r),
		Details:       []any{},
		Errors:        []errorBody{},
	}
	if status == http.StatusInternalServerError {
		s.log.Error("internal error", "contextId", body.ContextID, "method", r.Method, "path", r.URL.Path, "err", err)
		body.Code = apiusage.CodeInternal
		body.Message = "The server hit an internal error. The contextId identifies it in the server log."
		body.MessageWithParams = body.Message
	} else {
		domain := domainErrors(err)
		body.Message = apiusage.ErrorMessage(err)
		for _, e := range domain {
			maps.Copy(body.MessageParams, e.Params)
		}
		body.MessageWithParams = withParams(body.Message, body.MessageParams)
		if len(domain) > 1 {
			// Several problems at once (a query with two bad fields, a batch
			// with several bad events): list them one by one as well.
			for _, e := range domain {
				params := map[string]string{}
				maps.Copy(params, e.Params)
				body.Errors = append(body.Errors, errorBody{
					Message:           e.Message,
					Code:              e.Code,
					Status:            statusOf(e.Code),
					MessageWithParams: withParams(e.Message, params),
					MessageParams:     params,
					ContextID:         body.ContextID,
					Details:           []any{},
					Errors:            []errorBody{},
				})
			}
		}
	}
	switch status {
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", retryAfterSeconds)
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="apiusage"`)
	}
	s.writeJSON(w, r, status, body)
}

// withParams returns the message with each parameter's value replaced by
// {name}: the template the contract's messageWithParams holds.
func withParams(msg string, params map[string]string) string {
	for _, k := range slices.Sorted(maps.Keys(params)) {
		if v := params[k]; v != "" {
			msg = strings.ReplaceAll(msg, v, "{"+k+"}")
		}
	}
	return msg
}

// domainErrors returns every *apiusage.Error in err's tree, in order.
func domainErrors(err error) []*apiusage.Error {
	switch e := err.(type) {
	case nil:
		return nil
	case *apiusage.Error:
		return []*apiusage.Error{e}
	case interface{ Unwrap() []error }:
		var out []*apiusage.Error
		for _, inner := range e.Unwrap() {
			out = append(out, domainErrors(inner)...)
		}
		return out
	case interface{ Unwrap() error }:
		return domainErrors(e.Unwrap())
	}
	return nil
}

// decodeJSON decodes one JSON value from r into v. Unknown fields are
// ignored, as the contract says; anything malformed, or anything after the
// value, is a 400, and a body over its limit a 413.
func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return jsonError(err)
		}
		return apiusage.Errorf(apiusage.CodeBadRequest, "malformed JSON: unexpected data after the body")
	}
	return nil
}

// jsonError turns a decoding error into a domain error.
func jsonError(err error) error {
	var tooLarge *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		return apiusage.Errorf(apiusage.CodeTooLarge, "request body is larger than %d bytes", tooLarge.Limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return apiusage.Errorf(apiusage.CodeBadRequest, "the request body did not arrive in the time the server gives it")
	case errors.Is(err, io.EOF):
		return apiusage.Errorf(apiusage.CodeBadRequest, "malformed JSON: the body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apiusage.Errorf(apiusage.CodeBadRequest, "malformed JSON: unexpected end of the body")
	case errors.As(err, &syntax):
		return apiusage.Errorf(apiusage.CodeBadRequest, "malformed JSON at byte %d: %s", syntax.Offset, syntax.Error())
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return apiusage.Errorf(apiusage.CodeBadRequest, "malformed JSON: %s: cannot be a JSON %s", field, typ.Value)
	}
	var domain *apiusage.Error
	if errors.As(err, &domain) {
		return err
	}
	// Other decoding errors (a bad time, a read error of the client's body)
	// are still the caller's.
	return apiusage.Errorf(apiusage.CodeBadRequest, "malformed JSON: %s", err.Error())
}

// badRequest returns a 400 domain error.
func badRequest(format string, args ...any) error {
	return apiusage.Errorf(apiusage.CodeBadRequest, format, args...)
}

// wrap wraps err with short context; the result is an internal error unless
// err is a domain error.
func wrap(context string, err error) error {
	return fmt.Errorf("%s: %w", context, err)
}
