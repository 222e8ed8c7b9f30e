package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
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
	return func(r *http.Request, c *caller) (int, any, error) {
		key := r.Header.Get("Idempotency-Key")
		if len(key) > maxIdempotencyKey {
			return 0, nil, badRequest("Idempotency-Key: longer than %d bytes", maxIdempotencyKey)
		}
		events, err := decodeEvents(r.Body, isNDJSON(r.Header.Get("Content-Type")), s.cfg.MaxBatchEvents)
		if err != nil {
			return 0, nil, err
		}
		if err := validateEvents(events); err != nil {
			return 0, nil, err
		}
		any, err := s.holds(r.Context(), c, apiusage.PermEventAddAny)
		if err != nil {
			return 0, nil, err
		}
		if !any {
			if err := sameOrganization(events, c.org()); err != nil {
				return 0, nil, err
			}
		}
		if len(events) == 0 {
			return http.StatusAccepted, apiusage.Receipt{}, nil
		}
		b := apiusage.Batch{Events: events}
		if key != "" {
			// Scoped by the caller, length-prefixed so that no client id and
			// key can be made to collide with another pair.
			b.IdempotencyKey = strconv.Itoa(len(c.client.ID)) + ":" + c.client.ID + ":" + key
		}
		receipt, err := s.store.Append(r.Context(), b)
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

// decodeEvents reads a batch of at most max events: a JSON array of events,
// a single event object, or, when ndjson, events one after another
// (newline-delimited; any JSON whitespace between them is accepted). The
// decoder streams: the body is never held whole, and each event is decoded in
// place in the result.
func decodeEvents(r io.Reader, ndjson bool, max int) ([]apiusage.Event, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	first, err := firstByte(br)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(br)
	var events []apiusage.Event
	tooMany := func() error {
		return apiusage.Errorf(apiusage.CodeTooLarge, "a batch holds at most %d events", max)
	}
	decodeOne := func() error {
		if len(events) == max {
			return tooMany()
		}
		events = append(events, apiusage.Event{})
		if err := dec.Decode(&events[len(events)-1]); err != nil {
			return eventError(len(events)-1, err)
		}
		return nil
	}
	switch {
	case first == 0 && ndjson:
		return nil, nil
	case first == 0:
		return nil, badRequest("malformed JSON: the body is empty; send an array of events")
	case first == '[' && !ndjson:
		if _, err := dec.Token(); err != nil {
			return nil, jsonError(err)
		}
		for dec.More() {
			if err := decodeOne(); err != nil {
				return nil, err
			}
		}
		if _, err := dec.Token(); err != nil {
			return nil, jsonError(err)
		}
	case first == '{' && !ndjson:
		// A lone event is a batch of one: the friendliest reading of a body
		// that a one-event sender is likely to write.
		if err := decodeOne(); err != nil {
			return nil, err
		}
	case ndjson:
		for dec.More() {
			if err := decodeOne(); err != nil {
				return nil, err
			}
		}
	default:
		return nil, badRequest("malformed JSON: want an array of events")
	}
	// Nothing may follow; this also surfaces a read error (a body over its
	// limit) that More took for the end.
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return nil, jsonError(err)
		}
		return nil, badRequest("malformed JSON: unexpected %v after the events", tok)
	}
	return events, nil
}

// firstByte returns the first byte of the body that is not JSON whitespace,
// without consuming it, or 0 for a body of whitespace.
func firstByte(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err == io.EOF {
			return 0, nil
		}
		if err != nil {
			return 0, jsonError(err)
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		}
		_ = br.UnreadByte()
		return b, nil
	}
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
