package server

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/apiusage/apiusage"
)

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 256

// maxReportedEvents is how many invalid events a 400 names, so that a batch
// of 100,000 bad events does not become a 100,000-line error.
const maxReportedEvents = 10

// handleIngest is POST /api/v2/usage/events: a batch of events, stored all
// or nothing.
func (s *Server) handleIngest() apiFunc {
	// Parsers keep their body buffer and string table from batch to batch.
	var parsers eventParsers
	return func(r *http.Request, c *caller) (int, any, error) {
		key := r.Header.Get("Idempotency-Key")
		if len(key) > maxIdempotencyKey {
			return 0, nil, badRequest("Idempotency-Key: longer than %d bytes", maxIdempotencyKey)
		}
		// Bounded before the body is read: a turn is the memory of a body
		// and its events.
		ok, err := s.ingests.acquireWithin(r.Context(), s.cfg.IngestWait)
		if err != nil {
			return 0, nil, err
		}
		if !ok {
			return 0, nil, apiusage.Errorf(apiusage.CodeTooManyRequests,
				"The server is storing %d other batches; retry shortly.", cap(s.ingests))
		}
		defer s.ingests.release()
		// The events live in the parser until it is put back, after Append.
		p := parsers.get()
		defer parsers.put(p)
		events, hint, err := p.decodeReused(r.Body, min(r.ContentLength, s.cfg.MaxIngestBodyBytes),
			isNDJSON(r.Header.Get("Content-Type")), s.cfg.MaxBatchEvents)
		if err != nil {
			return 0, nil, err
		}
		if !validHinted(events, hint) {
			hint = nil
			if err := validateEvents(events); err != nil {
				return 0, nil, err
			}
		}
		any, err := s.holds(r.Context(), c, apiusage.PermEventAddAny)
		if err != nil {
			return 0, nil, err
		}
		if !any && !sameOrganizationHinted(hint, c.org()) {
			if err := sameOrganization(events, c.org()); err != nil {
				return 0, nil, err
			}
		}
		if len(events) == 0 {
			return http.StatusAccepted, apiusage.Receipt{}, nil
		}
		b := apiusage.Batch{Events: events, Strings: hint}
		if key != "" {
			// Scoped by the caller, length-prefixed so that no client id and
			// key can be made to collide with another pair.
			b.IdempotencyKey = strconv.Itoa(len(c.client.ID)) + ":" + c.client.ID + ":" + key
		}
		receipt, err := s.store.Append(r.Context(), b)
		if hint != nil {
			// Tokens the store gave are good whether or not it stored
			// the batch.
			p.remember(hint)
		}
		if err != nil {
			return 0, nil, wrap("append events", err)
		}
		if receipt.Replayed {
			return http.StatusAccepted, replayedReceipt{receipt}, nil
		}
		s.metrics.eventsIngested.Add(float64(receipt.Accepted))
		s.metrics.eventsDuplicate.Add(float64(receipt.Duplicates))
		return http.StatusAccepted, receipt, nil
	}
}

// replayedHeader tells a client that its batch repeated an Idempotency-Key:
// the body is the first answer's, as the contract wants, so only a header can
// say that nothing was stored this time.
const replayedHeader = "Idempotent-Replayed"

// replayedReceipt is the answer to a replayed batch.
type replayedReceipt struct{ apiusage.Receipt }

func (replayedReceipt) setHeaders(h http.Header) { h.Set(replayedHeader, "true") }

// isNDJSON reports whether the content type is newline-delimited JSON.
func isNDJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/x-ndjson"
}

// eventError names the event a decoding error is in.
func eventError(i int, err error) error {
	err = jsonError(err)
	var e *apiusage.Error
	if errors.As(err, &e) && e.Code == apiusage.CodeBadRequest {
		return apiusage.Errorf(apiusage.CodeBadRequest, "event %d: %s", i, e.Message)
	}
	return err
}

// validateEvents checks every event and normalizes the valid ones in place.
// The error names the first invalid events by index and field.
func validateEvents(events []apiusage.Event) error {
	var errs []error
	bad := 0
	for i := range events {
		if err := events[i].Validate(); err != nil {
			bad++
			if bad <= maxReportedEvents {
				for _, e := range domainErrors(err) {
					errs = append(errs, apiusage.Errorf(apiusage.CodeBadRequest, "event %d: %s", i, e.Message))
				}
			}
			continue
		}
		events[i] = events[i].Normalize()
	}
	if bad > maxReportedEvents {
		errs = append(errs, apiusage.Errorf(apiusage.CodeBadRequest, "and %d more invalid events", bad-maxReportedEvents))
	}
	if bad > 0 {
		errs = append([]error{apiusage.Errorf(apiusage.CodeBadRequest,
			"%d of %d events are invalid; nothing was stored", bad, len(events))}, errs...)
	}
	return errors.Join(errs...)
}

// maxUnix is the first second of the year 10000, UTC: Event.Validate
// accepts the years 1970 to 9999.
const maxUnix = 253402300800

// validHinted reports whether every event is valid, checking each distinct
// string once (through the batch's hint) rather than once per event, and
// normalizes the events as Event.Normalize does when they are. It accepts
// only what Event.Validate accepts; false (the events left alone) means
// that validateEvents must judge, and name the invalid events, and that the
// hint is not to be trusted.
func validHinted(events []apiusage.Event, h *apiusage.BatchStrings) bool {
	// The hint must be the events' own: their strings the very values,
	// which makes its check comparisons of pointers.
	if !h.Describes(events) {
		return false
	}
	for _, vals := range h.Values {
		if vals[0] != "" {
			return false
		}
		for _, v := range vals[1:] {
			if len(v) > apiusage.MaxFieldLength || v == "" {
				return false
			}
		}
	}
	method := h.Values[hintMethod]
	for i := range events {
		e := &events[i]
		// Required fields refer to a value other than the first, "".
		if r := &h.Refs[i]; r[0] == 0 || r[1] == 0 || r[4] == 0 || r[5] == 0 {
			return false
		}
		if len(e.ID) > apiusage.MaxIDLength || e.Status < 100 || e.Status > 599 {
			return false
		}
		// Unix counts seconds from 1970 in UTC: the years 1970 to 9999 are
		// this range.
		if u := e.Time.Unix(); u < 0 || u >= maxUnix {
			return false
		}
	}
	// Rewritten in place: on false the caller drops the hint, and the
	// events still hold their own strings.
	for j, v := range method[1:] {
		m, ok := canonicalMethod(v)
		if !ok {
			return false
		}
		method[j+1] = m
	}
	for i := range events {
		e := &events[i]
		e.Time = e.Time.UTC()
		e.Method = method[h.Refs[i][hintMethod]]
	}
	return true
}

// hintMethod is the index of Event.Method in apiusage.BatchStrings.
const hintMethod = 5

// canonicalMethod returns the method as Event.Normalize writes it.
func canonicalMethod(m string) (string, bool) {
	e := apiusage.Event{Method: m}.Normalize()
	return e.Method, slices.Contains(apiusage.HTTPMethods, e.Method)
}

// sameOrganizationHinted reports whether every event names org, judging by
// the batch's hint: false when it cannot tell.
func sameOrganizationHinted(h *apiusage.BatchStrings, org string) bool {
	if h == nil {
		return false
	}
	for _, v := range h.Values[0][1:] {
		if v != org {
			return false
		}
	}
	return true
}

// sameOrganization returns a 403 unless every event names org: a caller
// without usage:event:add:any records only its own organization's usage.
func sameOrganization(events []apiusage.Event, org string) error {
	var idx []string
	n := 0
	for i, e := range events {
		if e.OrganizationID != org {
			n++
			if len(idx) < maxReportedEvents {
				idx = append(idx, strconv.Itoa(i))
			}
		}
	}
	if n == 0 {
		return nil
	}
	more := ""
	if n > len(idx) {
		more = fmt.Sprintf(" and %d more", n-len(idx))
	}
	return &apiusage.Error{
		Code: apiusage.CodeMissingPerms,
		Message: "Unable to perform the requested action. Events " + strings.Join(idx, ", ") + more +
			" name another organization than the caller's, which needs the permission: " + apiusage.PermEventAddAny,
		Params: map[string]string{"permissions": apiusage.PermEventAddAny},
	}
}
