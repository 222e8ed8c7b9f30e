package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/client"
)

// Input formats of ingest.
const (
	formatAuto   = "auto"
	formatNDJSON = "ndjson"
	formatJSON   = "json"
	formatCSV    = "csv"
)

// maxInvalidShown bounds the invalid events reported one by one per file;
// the rest are only counted.
const maxInvalidShown = 20

// maxLineBytes bounds an NDJSON line: far above any real event, low enough
// that a file without newlines does not load whole into memory.
const maxLineBytes = 1 << 20

// ingestStats count what happened to one file's events.
type ingestStats struct {
	File            string `json:"file"`
	Events          int    `json:"events"`
	Batches         int    `json:"batches"`
	Accepted        int    `json:"accepted"`
	Duplicates      int    `json:"duplicates"`
	ReplayedBatches int    `json:"replayedBatches"`
	Invalid         int    `json:"invalid"`
}

func (s *ingestStats) add(o ingestStats) {
	s.Events += o.Events
	s.Batches += o.Batches
	s.Accepted += o.Accepted
	s.Duplicates += o.Duplicates
	s.ReplayedBatches += o.ReplayedBatches
	s.Invalid += o.Invalid
}

func (s ingestStats) String() string {
	out := fmt.Sprintf("%s: %d events in %s: %d accepted, %d duplicates",
		s.File, s.Events, plural(s.Batches, "batch", "batches"), s.Accepted, s.Duplicates)
	// Only a server that says so tells replayed batches apart, so a zero
	// here proves nothing and is left out.
	if s.ReplayedBatches > 0 {
		out += ", " + plural(s.ReplayedBatches, "batch", "batches") + " already stored before"
	}
	return out + fmt.Sprintf(", %d invalid", s.Invalid)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// ingestOptions are the flags of ingest.
type ingestOptions struct {
	batchSize int
	format    string
	output    string
	dryRun    bool
}

func (c *cli) ingestCommand() *cobra.Command {
	var o ingestOptions
	cmd := &cobra.Command{
		Use:   "ingest FILE...",
		Short: "Send events from NDJSON, JSON or CSV files to the server",
		Long: `Send the events of each file to the server in batches. A file is NDJSON (one
event a line), a JSON array of events, or CSV with a header row naming event
fields (id, timestamp, organizationId, clientId, clientName, userId,
templateUri, httpMethod, status). The format is guessed from the extension
and the first character unless --format says.

Each batch carries an Idempotency-Key made of the file's content hash and the
batch's place in it, so running the same command again after a crash or an
interrupt stores only what was not stored yet: nothing is counted twice (use
the same --batch-size for the re-run). Invalid events are reported with file
and line, skipped, and make the exit status 1 once the rest is sent.`,
		Example: `  apiusage ingest events.ndjson
  apiusage ingest --batch-size 1000 day1.csv day2.csv
  apiusage ingest --dry-run export.json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.ingest(cmd.Context(), o, args)
		},
	}
	c.addConnFlags(cmd)
	fl := cmd.Flags()
	fl.IntVar(&o.batchSize, "batch-size", 5000, "events per request")
	fl.StringVar(&o.format, "format", formatAuto, "input format: auto, ndjson, json or csv")
	fl.BoolVar(&o.dryRun, "dry-run", false, "read and check the files, send nothing")
	c.outputFlag(cmd, &o.output, outputTable, outputJSON)
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions(
		[]string{formatAuto, formatNDJSON, formatJSON, formatCSV}, cobra.ShellCompDirectiveNoFileComp))
	cmd.ValidArgsFunction = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"ndjson", "jsonl", "json", "csv"}, cobra.ShellCompDirectiveFilterFileExt
	}
	return cmd
}

func (c *cli) ingest(ctx context.Context, o ingestOptions, files []string) error {
	if o.batchSize < 1 {
		return usageError{fmt.Errorf("--batch-size must be at least 1, got %d", o.batchSize)}
	}
	switch o.format {
	case formatAuto, formatNDJSON, formatJSON, formatCSV:
	default:
		return usageError{fmt.Errorf("--format: unknown format %q; want auto, ndjson, json or csv", o.format)}
	}
	format, err := c.outputFormat(o.output, outputTable, outputJSON)
	if err != nil {
		return err
	}
	var cl *client.Client
	if !o.dryRun {
		if cl, err = c.client(); err != nil {
			return err
		}
	}
	total := ingestStats{File: "total"}
	var all []ingestStats
	for _, name := range files {
		st, err := c.ingestFile(ctx, cl, o, name)
		all = append(all, st)
		total.add(st)
		if err != nil {
			if st.Batches > 0 {
				fmt.Fprintf(c.stderr, "%s\nstopped; run the same command again to send the rest: the %d batches sent are not counted twice\n", st, st.Batches)
			}
			return err
		}
	}
	if format == outputJSON {
		if err := writeJSON(c.stdout, map[string]any{"files": all, "total": total}); err != nil {
			return err
		}
	} else {
		for _, st := range all {
			fmt.Fprintln(c.stdout, st)
		}
		if len(all) > 1 {
			fmt.Fprintln(c.stdout, total)
		}
	}
	if total.Invalid > 0 {
		return usageError{fmt.Errorf("%d invalid events were skipped (reported above)", total.Invalid)}
	}
	return nil
}

// ingestFile sends one file's events.
func (c *cli) ingestFile(ctx context.Context, cl *client.Client, o ingestOptions, name string) (ingestStats, error) {
	st := ingestStats{File: name}
	f, err := os.Open(name)
	if err != nil {
		return st, usageError{err}
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return st, usageError{err}
	}
	if info.IsDir() {
		return st, usageError{fmt.Errorf("%s is a directory", name)}
	}
	// The idempotency keys derive from the content, not the name, so that
	// a re-run finds its batches again and a changed file is new batches.
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return st, fmt.Errorf("read %s: %w", name, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))[:32]
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return st, fmt.Errorf("read %s: %w", name, err)
	}
	counted := &countingReader{r: f}
	br := bufio.NewReaderSize(counted, 64<<10)
	format := o.format
	if format == formatAuto {
		format = sniffFormat(name, br)
	}

	bar := &progress{w: c.stderr, now: c.now, on: c.terminal(c.stderr)}
	defer bar.clear()
	start := c.now()
	line := func() string {
		return progressLine(filepath.Base(name), counted.n-int64(br.Buffered()), info.Size(), st.Events, c.now().Sub(start))
	}

	batch := make([]apiusage.Event, 0, min(o.batchSize, 1<<16))
	offset := 0 // index among the file's valid events of the batch's first
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		key := fmt.Sprintf("apiusage-ingest-%s-%d-%d", sum, offset, len(batch))
		if !o.dryRun {
			rc, err := cl.PostUsageEvents(ctx, batch, key)
			if err != nil {
				return serverError(fmt.Sprintf("%s: send events %d to %d", name, offset, offset+len(batch)-1), err)
			}
			st.Accepted += rc.Accepted
			st.Duplicates += rc.Duplicates
			if rc.Replayed {
				st.ReplayedBatches++
			}
		}
		st.Batches++
		offset += len(batch)
		batch = batch[:0]
		bar.draw(false, line)
		return nil
	}
	for rec := range readEvents(format, br) {
		if rec.err != nil {
			var bad *invalidEvent
			if !errors.As(rec.err, &bad) {
				return st, usageError{fmt.Errorf("%s:%d: %w", name, rec.line, rec.err)}
			}
			st.Invalid++
			if st.Invalid <= maxInvalidShown+1 {
				bar.clear() // the report gets a line of its own; the bar comes back
			}
			if st.Invalid <= maxInvalidShown {
				msg := bad.Error()
				if apiusage.ErrorCode(bad.err) == apiusage.CodeBadRequest {
					msg = apiusage.ErrorMessage(bad.err) // without the code
				}
				fmt.Fprintf(c.stderr, "%s:%d: %s\n", name, rec.line, strings.ReplaceAll(msg, "\n", "; "))
			} else if st.Invalid == maxInvalidShown+1 {
				fmt.Fprintf(c.stderr, "%s: more invalid events; only counting them from here\n", name)
			}
			continue
		}
		st.Events++
		batch = append(batch, rec.event.Normalize())
		if len(batch) == o.batchSize {
			if err := send(); err != nil {
				return st, err
			}
		}
	}
	if err := send(); err != nil {
		return st, err
	}
	bar.draw(true, line)
	return st, nil
}

// sniffFormat guesses a file's format: CSV by its extension, a JSON array by
// its first character, NDJSON otherwise.
func sniffFormat(name string, br *bufio.Reader) string {
	if strings.EqualFold(filepath.Ext(name), ".csv") {
		return formatCSV
	}
	for i := 1; ; i++ {
		b, err := br.Peek(i)
		if err != nil || i > 4096 {
			return formatNDJSON
		}
		switch b[i-1] {
		case ' ', '\t', '\r', '\n', 0xEF, 0xBB, 0xBF: // whitespace, a UTF-8 BOM
			continue
		case '[':
			return formatJSON
		}
		return formatNDJSON
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// eventRecord is one event read from a file, or why it could not be.
type eventRecord struct {
	event apiusage.Event
	// line is the line the event starts on.
	line int
	// err is an *invalidEvent for an event that is skipped; any other
	// error ends the file.
	err error
}

// invalidEvent is an event that cannot be sent; reading goes on after it.
type invalidEvent struct{ err error }

func (e *invalidEvent) Error() string { return e.err.Error() }
func (e *invalidEvent) Unwrap() error { return e.err }

// checked returns the record of a decoded event: invalid unless it passes
// Validate, the check the server makes too.
func checked(e apiusage.Event, line int) eventRecord {
	if err := e.Validate(); err != nil {
		return eventRecord{line: line, err: &invalidEvent{err}}
	}
	return eventRecord{event: e, line: line}
}

// readEvents reads the events of r in the format.
func readEvents(format string, r io.Reader) iter.Seq[eventRecord] {
	switch format {
	case formatJSON:
		return readJSONArray(r)
	case formatCSV:
		return readCSV(r)
	}
	return readNDJSON(r)
}

// readNDJSON reads one event a line; blank lines are skipped.
func readNDJSON(r io.Reader) iter.Seq[eventRecord] {
	return func(yield func(eventRecord) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
		n := 0
		for sc.Scan() {
			n++
			text := bytes.TrimSpace(sc.Bytes())
			if n == 1 {
				text = bytes.TrimPrefix(text, []byte("\xEF\xBB\xBF"))
			}
			if len(text) == 0 {
				continue
			}
			var e apiusage.Event
			rec := eventRecord{line: n}
			if err := json.Unmarshal(text, &e); err != nil {
				rec.err = &invalidEvent{fmt.Errorf("not a JSON event: %w", err)}
			} else {
				rec = checked(e, n)
			}
			if !yield(rec) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				err = fmt.Errorf("line longer than %d bytes", maxLineBytes)
			}
			yield(eventRecord{line: n + 1, err: err})
		}
	}
}

// readJSONArray reads a JSON array of events. An element that is JSON but
// not an event is skipped; malformed JSON ends the file, since nothing after
// it can be read with certainty.
func readJSONArray(r io.Reader) iter.Seq[eventRecord] {
	return func(yield func(eventRecord) bool) {
		lines := &lineCounter{r: r}
		dec := json.NewDecoder(lines)
		tok, err := dec.Token()
		if err != nil || tok != json.Delim('[') {
			if err == nil {
				err = errors.New("not a JSON array of events")
			}
			yield(eventRecord{line: lines.lineAt(dec.InputOffset()), err: err})
			return
		}
		for dec.More() {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				yield(eventRecord{line: lines.lineAt(dec.InputOffset()), err: fmt.Errorf("malformed JSON: %w", err)})
				return
			}
			line := lines.lineAt(dec.InputOffset() - int64(len(raw)))
			var e apiusage.Event
			rec := eventRecord{line: line}
			if err := json.Unmarshal(raw, &e); err != nil {
				rec.err = &invalidEvent{fmt.Errorf("not a JSON event: %w", err)}
			} else {
				rec = checked(e, line)
			}
			if !yield(rec) {
				return
			}
		}
		if _, err := dec.Token(); err != nil {
			yield(eventRecord{line: lines.lineAt(dec.InputOffset()), err: fmt.Errorf("malformed JSON: %w", err)})
		}
	}
}

// lineCounter remembers where the lines of what is read through it start,
// to turn byte offsets into line numbers. Offsets must be asked in
// increasing order; it forgets the lines before the last one asked.
type lineCounter struct {
	r    io.Reader
	read int64
	// newlines holds the offsets of newlines not yet passed by lineAt.
	newlines []int64
	line     int
}

func (l *lineCounter) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for i, b := range p[:n] {
		if b == '\n' {
			l.newlines = append(l.newlines, l.read+int64(i))
		}
	}
	l.read += int64(n)
	return n, err
}

// lineAt returns the line (from 1) of the byte at offset off.
func (l *lineCounter) lineAt(off int64) int {
	i := 0
	for i < len(l.newlines) && l.newlines[i] < off {
		i++
	}
	l.line += i
	l.newlines = l.newlines[i:]
	return l.line + 1
}

// csvFields are the columns a CSV header may name: the event's JSON names.
var csvFields = []string{"id", "timestamp", "organizationId", "clientId", "clientName", "userId", "templateUri", "httpMethod", "status"}

// readCSV reads CSV with a header row naming event fields. A row that does
// not make an event is skipped.
func readCSV(r io.Reader) iter.Seq[eventRecord] {
	return func(yield func(eventRecord) bool) {
		cr := csv.NewReader(r)
		cr.ReuseRecord = true
		header, err := cr.Read()
		if err != nil {
			if err == io.EOF {
				err = errors.New("no header row")
			}
			yield(eventRecord{line: 1, err: err})
			return
		}
		cols := make([]string, len(header))
		for i, h := range header {
			h = strings.TrimSpace(strings.TrimPrefix(h, "\xEF\xBB\xBF"))
			for _, f := range csvFields {
				if strings.EqualFold(h, f) {
					cols[i] = f
				}
			}
			if cols[i] == "" {
				yield(eventRecord{line: 1, err: fmt.Errorf("header: unknown column %q; columns are %s", h, strings.Join(csvFields, ", "))})
				return
			}
		}
		for {
			rec, err := cr.Read()
			if err == io.EOF {
				return
			}
			var perr *csv.ParseError
			if errors.As(err, &perr) {
				// The reader goes on at the next record.
				if !yield(eventRecord{line: perr.Line, err: &invalidEvent{err}}) {
					return
				}
				continue
			}
			if err != nil {
				yield(eventRecord{err: err})
				return
			}
			line, _ := cr.FieldPos(0)
			e, err := csvEvent(cols, rec)
			out := eventRecord{line: line, err: err}
			if err == nil {
				out = checked(e, line)
			}
			if !yield(out) {
				return
			}
		}
	}
}

// csvEvent makes an event of a CSV row.
func csvEvent(cols, rec []string) (apiusage.Event, error) {
	var e apiusage.Event
	var errs []error
	for i, v := range rec {
		v = strings.TrimSpace(v)
		switch cols[i] {
		case "id":
			e.ID = v
		case "timestamp":
			if v == "" {
				continue // reported by Validate
			}
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				errs = append(errs, fmt.Errorf("timestamp: want RFC 3339, got %q", v))
			}
			e.Time = t
		case "organizationId":
			e.OrganizationID = v
		case "clientId":
			e.ClientID = v
		case "clientName":
			e.ClientName = v
		case "userId":
			e.UserID = v
		case "templateUri":
			e.TemplateURI = v
		case "httpMethod":
			e.Method = v
		case "status":
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("status: want a number, got %q", v))
			}
			e.Status = n
		}
	}
	if len(errs) > 0 {
		return e, &invalidEvent{errors.Join(errs...)}
	}
	return e, nil
}
