// Package clickhouse is the ClickHouse baseline of the benchmark: what a team
// would build instead of apiusage, every request written into a raw events
// table and each Usage API question answered with GROUP BY.
//
// It talks to the server over its HTTP interface, which every ClickHouse
// release has (Debian ships 18.16, older than the native protocol of the Go
// drivers), loads NDJSON with INSERT ... FORMAT JSONEachRow, and answers an
// apiusage.Query with the same semantics as the embedded store: an event
// counts when the start of its UTC hour lies in the interval, 429 counts in
// 4xx too, and rows come ordered by apiusage.CompareRows.
//
// Server starts a private clickhouse-server process on loopback, for the
// benchmark and for tests.
package clickhouse

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/apiusage/apiusage"
)

// Baseline is a raw events table in a ClickHouse database.
//
// It is safe for concurrent use once loaded.
type Baseline struct {
	url      string // http://host:port/
	database string
	client   *http.Client
	names    map[string]string
}

// New returns the baseline in database on the server at baseURL
// (http://127.0.0.1:8123).
func New(baseURL, database string) *Baseline {
	return &Baseline{
		url:      strings.TrimSuffix(baseURL, "/") + "/",
		database: database,
		client:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}},
	}
}

// Close closes the idle connections to the server, whose graceful shutdown
// waits for them.
func (b *Baseline) Close() { b.client.CloseIdleConnections() }

// Create drops and creates the database and its events table. The sort key
// is the one a team would choose for per-organization time-range queries.
func (b *Baseline) Create(ctx context.Context) error {
	stmts := []string{
		"DROP DATABASE IF EXISTS " + b.database,
		"CREATE DATABASE " + b.database,
		`CREATE TABLE ` + b.database + `.events (
			timestamp DateTime,
			organizationId String,
			clientId String,
			clientName String,
			userId String,
			templateUri String,
			httpMethod String,
			status UInt16
		) ENGINE = MergeTree
		PARTITION BY toYYYYMM(timestamp)
		ORDER BY (organizationId, timestamp)`,
	}
	for _, s := range stmts {
		if _, err := b.exec(ctx, s, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// Load inserts the NDJSON events read from r, in one streaming
// INSERT ... FORMAT JSONEachRow, the server's fastest path for JSON. Fields
// other than the table's (an event's id) are skipped; timestamps are parsed
// best-effort (RFC 3339 with milliseconds and Z). ClickHouse acknowledges an
// insert once it is written, without an fsync.
func (b *Baseline) Load(ctx context.Context, r io.Reader) error {
	params := url.Values{
		"date_time_input_format":           {"best_effort"},
		"input_format_skip_unknown_fields": {"1"},
	}
	_, err := b.exec(ctx, "INSERT INTO "+b.database+".events FORMAT JSONEachRow", r, params)
	if err != nil {
		return fmt.Errorf("load events: %w", err)
	}
	b.names = nil
	return nil
}

// WaitMerges waits until the table has no merges running, so that query
// timings do not include the background merges that follow a load.
func (b *Baseline) WaitMerges(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		out, err := b.exec(ctx, "SELECT count() FROM system.merges WHERE database = "+quote(b.database), nil, nil)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(out)) == "0" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// Count returns the number of events in the table.
func (b *Baseline) Count(ctx context.Context) (int64, error) {
	out, err := b.exec(ctx, "SELECT count() FROM "+b.database+".events", nil, nil)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
}

// DiskBytes returns the bytes the table's active parts take on disk.
func (b *Baseline) DiskBytes(ctx context.Context) (int64, error) {
	out, err := b.exec(ctx, "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = "+quote(b.database), nil, nil)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
}

// ClientNames returns the last name an event gave each client. It reads
// them once after a load and keeps them, as an application keeps a small
// clients table beside its events.
func (b *Baseline) ClientNames(ctx context.Context) (map[string]string, error) {
	if b.names != nil {
		return b.names, nil
	}
	out, err := b.exec(ctx, "SELECT clientId, argMax(clientName, timestamp) FROM "+b.database+
		".events WHERE clientName != '' GROUP BY clientId FORMAT TabSeparated", nil, nil)
	if err != nil {
		return nil, fmt.Errorf("client names: %w", err)
	}
	names := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := splitTSV(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("client names: bad line %q", line)
		}
		names[f[0]] = f[1]
	}
	b.names = names
	return names, nil
}

// SQL returns the statement that answers q.
func (b *Baseline) SQL(q apiusage.Query) string {
	first, end := q.Interval.Hours()
	var sel, group []string
	if expr := dateExpr(q.Granularity); expr != "" {
		sel = append(sel, "toUInt32(toDateTime("+expr+")) AS d")
		group = append(group, "d")
	}
	for _, d := range q.GroupBy {
		sel = append(sel, column(d))
		group = append(group, column(d))
	}
	sel = append(sel,
		"countIf(intDiv(status, 100) = 2)",
		"countIf(intDiv(status, 100) = 3)",
		"countIf(intDiv(status, 100) = 4)",
		"countIf(intDiv(status, 100) = 5)",
		"countIf(status = 429)",
		"count() AS n")
	where := []string{
		"timestamp >= toDateTime(" + strconv.FormatInt(first*3600, 10) + ")",
		"timestamp < toDateTime(" + strconv.FormatInt(end*3600, 10) + ")",
	}
	if q.OrganizationID != "" {
		where = append(where, "organizationId = "+quote(q.OrganizationID))
	}
	where = appendIn(where, "clientId", q.ClientIDs)
	where = appendIn(where, "httpMethod", q.Methods)
	where = appendIn(where, "templateUri", q.TemplateURIs)
	s := "SELECT " + strings.Join(sel, ", ") + " FROM " + b.database + ".events WHERE " + strings.Join(where, " AND ")
	if len(group) > 0 {
		s += " GROUP BY " + strings.Join(group, ", ") + " ORDER BY " + strings.Join(group, ", ")
	} else {
		s += " HAVING n > 0" // an aggregate without keys answers one row even over nothing
	}
	return s + " FORMAT TabSeparated"
}

// Query answers q from the raw events, rows ordered by
// apiusage.CompareRows(q.GroupBy) (ClickHouse compares strings bytewise, as
// Go does).
func (b *Baseline) Query(ctx context.Context, q apiusage.Query) ([]apiusage.Row, error) {
	var names map[string]string
	if grouped(q, apiusage.DimClient) {
		var err error
		if names, err = b.ClientNames(ctx); err != nil {
			return nil, err
		}
	}
	body, err := b.stream(ctx, b.SQL(q), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	defer body.Close()
	rows, err := parseRows(body, q, names)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	return rows, nil
}

func parseRows(r io.Reader, q apiusage.Query, names map[string]string) ([]apiusage.Row, error) {
	hasDate := q.Granularity != apiusage.GranularityNone
	want := len(q.GroupBy) + 6
	if hasDate {
		want++
	}
	var rows []apiusage.Row
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		f := splitTSV(sc.Text())
		if len(f) != want {
			return nil, fmt.Errorf("row %q has %d fields, want %d", sc.Text(), len(f), want)
		}
		var row apiusage.Row
		if hasDate {
			secs, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("bad date %q", f[0])
			}
			row.Date = time.Unix(secs, 0).UTC()
			f = f[1:]
		}
		for i, d := range q.GroupBy {
			setDimension(&row, d, f[i])
		}
		if row.ClientID != "" {
			row.ClientName = names[row.ClientID]
		}
		var c [6]int64
		for i, s := range f[len(q.GroupBy):] {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("bad count %q", s)
			}
			c[i] = v
		}
		row.Counts = apiusage.Counts{Status200: c[0], Status300: c[1], Status400: c[2], Status500: c[3], Status429: c[4], Requests: c[5]}
		rows = append(rows, row)
	}
	return rows, sc.Err()
}

func grouped(q apiusage.Query, d apiusage.Dimension) bool {
	for _, g := range q.GroupBy {
		if g == d {
			return true
		}
	}
	return false
}

func setDimension(r *apiusage.Row, d apiusage.Dimension, v string) {
	switch d {
	case apiusage.DimClient:
		r.ClientID = v
	case apiusage.DimOrganization:
		r.OrganizationID = v
	case apiusage.DimUser:
		r.UserID = v
	case apiusage.DimTemplateURI:
		r.TemplateURI = v
	case apiusage.DimMethod:
		r.Method = v
	}
}

// dateExpr is the bucket of an event's timestamp; the server runs in UTC.
func dateExpr(g apiusage.Granularity) string {
	switch g {
	case apiusage.GranularityDay:
		return "toStartOfDay(timestamp)"
	case apiusage.GranularityWeek:
		return "toMonday(timestamp)"
	case apiusage.GranularityMonth:
		return "toStartOfMonth(timestamp)"
	}
	return ""
}

func column(d apiusage.Dimension) string {
	switch d {
	case apiusage.DimClient:
		return "clientId"
	case apiusage.DimOrganization:
		return "organizationId"
	case apiusage.DimUser:
		return "userId"
	case apiusage.DimTemplateURI:
		return "templateUri"
	case apiusage.DimMethod:
		return "httpMethod"
	}
	panic("clickhouse: unknown dimension " + string(d))
}

func appendIn(where []string, col string, values []string) []string {
	if len(values) == 0 {
		return where
	}
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = quote(v)
	}
	return append(where, col+" IN ("+strings.Join(q, ", ")+")")
}

// quote returns s as a ClickHouse string literal.
func quote(s string) string {
	var sb strings.Builder
	sb.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '\'':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case 0:
			sb.WriteString(`\0`)
		default:
			sb.WriteByte(c)
		}
	}
	sb.WriteByte('\'')
	return sb.String()
}

// splitTSV splits a TabSeparated line and unescapes its fields.
func splitTSV(line string) []string {
	f := strings.Split(line, "\t")
	for i, s := range f {
		if strings.IndexByte(s, '\\') >= 0 {
			f[i] = unescapeTSV(s)
		}
	}
	return f
}

func unescapeTSV(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			sb.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 't':
			sb.WriteByte('\t')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case '0':
			sb.WriteByte(0)
		case 'b':
			sb.WriteByte('\b')
		case 'f':
			sb.WriteByte('\f')
		default:
			sb.WriteByte(s[i])
		}
	}
	return sb.String()
}

// exec runs one statement, with body as the data of an INSERT, and returns
// the whole answer.
func (b *Baseline) exec(ctx context.Context, query string, body io.Reader, params url.Values) ([]byte, error) {
	rc, err := b.stream(ctx, query, body, params)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	out, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	return out, nil
}

// stream runs one statement and returns the answer's body. With a body, the
// statement goes in the URL and the body is the data; without, the
// statement is the body.
func (b *Baseline) stream(ctx context.Context, query string, body io.Reader, params url.Values) (io.ReadCloser, error) {
	if params == nil {
		params = url.Values{}
	}
	if body != nil {
		params.Set("query", query)
	} else {
		body = strings.NewReader(query)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url+"?"+params.Encode(), body)
	if err != nil {
		return nil, err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, fmt.Errorf("clickhouse: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp.Body, nil
}

// ErrNotInstalled is returned by StartServer when clickhouse-server is not
// on the PATH.
var ErrNotInstalled = errors.New("clickhouse-server is not installed (apt-get install clickhouse-server)")

// Version returns the server's version.
func (b *Baseline) Version(ctx context.Context) (string, error) {
	out, err := b.exec(ctx, "SELECT version()", nil, nil)
	return strings.TrimSpace(string(out)), err
}
