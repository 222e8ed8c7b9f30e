package server

import (
	"bufio"
	"encoding/json"
	"io"

	"github.com/apiusage/apiusage"
)

// decodeEventsStd is the decoder the server had before eventParser, built on
// encoding/json: the reference that FuzzDecodeEventsDifferential holds the
// parser to, and the baseline of BenchmarkIngestDecode. One bug is fixed
// here as in the parser: it took a body starting with a NUL byte for an
// empty one (firstByte's 0 meant both), so "\x00" followed by anything was
// an empty NDJSON batch.
func decodeEventsStd(r io.Reader, ndjson bool, max int) ([]apiusage.Event, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	first, err := stdFirstByte(br)
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
	case first == -1 && ndjson:
		return nil, nil
	case first == -1:
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

// stdFirstByte returns the first byte of the body that is not JSON whitespace,
// without consuming it, or -1 for a body of whitespace.
func stdFirstByte(br *bufio.Reader) (int, error) {
	for {
		b, err := br.ReadByte()
		if err == io.EOF {
			return -1, nil
		}
		if err != nil {
			return 0, jsonError(err)
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		}
		_ = br.UnreadByte()
		return int(b), nil
	}
}
