package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/client"
)

// column is a column of query results as the CLI prints them.
type column struct {
	// header is the table's heading; key is the JSON key and CSV heading,
	// the contract's field name, so that a CSV or JSON output reads like the
	// API's rows.
	header, key string
	// get returns the cell: a string, an int64 or a time.Time.
	get func(r client.UsageRow) any
}

func stringColumn(header, key string, get func(r client.UsageRow) string) column {
	return column{header: header, key: key, get: func(r client.UsageRow) any { return get(r) }}
}

func numberColumn(header, key string, get func(r client.UsageRow) int64) column {
	return column{header: header, key: key, get: func(r client.UsageRow) any { return get(r) }}
}

var dateColumn = column{header: "DATE", key: "date", get: func(r client.UsageRow) any { return r.Date }}

// dimensionColumns returns the columns of a grouped-on dimension. A client
// shows with its name, which is what a reader recognizes.
func dimensionColumns(d apiusage.Dimension) []column {
	switch d {
	case apiusage.DimClient:
		return []column{
			stringColumn("CLIENT ID", "clientId", func(r client.UsageRow) string { return r.ClientID }),
			stringColumn("CLIENT NAME", "clientName", func(r client.UsageRow) string { return r.ClientName }),
		}
	case apiusage.DimOrganization:
		return []column{stringColumn("ORGANIZATION ID", "organizationId", func(r client.UsageRow) string { return r.OrganizationID })}
	case apiusage.DimUser:
		return []column{stringColumn("USER ID", "userId", func(r client.UsageRow) string { return r.UserID })}
	case apiusage.DimTemplateURI:
		return []column{stringColumn("TEMPLATE URI", "templateUri", func(r client.UsageRow) string { return r.TemplateURI })}
	case apiusage.DimMethod:
		return []column{stringColumn("METHOD", "httpMethod", func(r client.UsageRow) string { return r.HTTPMethod })}
	}
	return nil
}

// metricColumn returns the column of a metric.
func metricColumn(m apiusage.Metric) column {
	switch m {
	case apiusage.MetricStatus200:
		return numberColumn("2XX", "status200", func(r client.UsageRow) int64 { return r.Status200 })
	case apiusage.MetricStatus300:
		return numberColumn("3XX", "status300", func(r client.UsageRow) int64 { return r.Status300 })
	case apiusage.MetricStatus400:
		return numberColumn("4XX", "status400", func(r client.UsageRow) int64 { return r.Status400 })
	case apiusage.MetricStatus500:
		return numberColumn("5XX", "status500", func(r client.UsageRow) int64 { return r.Status500 })
	case apiusage.MetricStatus429:
		return numberColumn("429", "status429", func(r client.UsageRow) int64 { return r.Status429 })
	}
	return numberColumn("REQUESTS", "requests", func(r client.UsageRow) int64 { return r.Requests })
}

// queryColumns returns the columns of a normalized organization or client
// query's rows: the date with a granularity, the grouped dimensions, the
// metrics.
func queryColumns(q apiusage.OrgQuery) []column {
	var cols []column
	if q.Granularity != apiusage.GranularityNone {
		cols = append(cols, dateColumn)
	}
	for _, d := range q.GroupBy {
		cols = append(cols, dimensionColumns(d)...)
	}
	for _, m := range q.Metrics {
		cols = append(cols, metricColumn(m))
	}
	return cols
}

// searchColumns returns the columns of a normalized simple search's rows.
func searchColumns(s apiusage.SimpleSearch) []column {
	var cols []column
	for _, c := range s.Metrics {
		switch c {
		case apiusage.ColumnDate:
			cols = append(cols, dateColumn)
		case apiusage.ColumnClientName:
			cols = append(cols, dimensionColumns(apiusage.DimClient)[1])
		case apiusage.ColumnHTTPMethod:
			cols = append(cols, dimensionColumns(apiusage.DimMethod)...)
		case apiusage.ColumnTemplateURI:
			cols = append(cols, dimensionColumns(apiusage.DimTemplateURI)...)
		default:
			cols = append(cols, metricColumn(apiusage.Metric(c)))
		}
	}
	return cols
}

// rowWriter writes result rows in one output format.
type rowWriter interface {
	write(r client.UsageRow) error
	// close writes what is left; it must be called once after the last row.
	close() error
}

func newRowWriter(format string, w io.Writer, cols []column) rowWriter {
	switch format {
	case outputCSV:
		return &csvRows{w: csv.NewWriter(w), cols: cols}
	case outputJSON:
		return &jsonRows{w: w, cols: cols}
	}
	return &tableRows{w: w, cols: cols}
}

// tableRows writes an aligned text table: text left, numbers right. It
// keeps every row until close, since widths depend on all of them.
type tableRows struct {
	w     io.Writer
	cols  []column
	cells [][]string
}

func (t *tableRows) write(r client.UsageRow) error {
	row := make([]string, len(t.cols))
	for i, c := range t.cols {
		switch v := c.get(r).(type) {
		case string:
			if v == "" {
				v = "-"
			}
			row[i] = v
		case int64:
			row[i] = strconv.FormatInt(v, 10)
		case time.Time:
			row[i] = v.UTC().Format(time.DateOnly)
		}
	}
	t.cells = append(t.cells, row)
	return nil
}

func (t *tableRows) close() error {
	headers := make([]string, len(t.cols))
	right := make([]bool, len(t.cols))
	for i, c := range t.cols {
		headers[i] = c.header
		_, right[i] = c.get(client.UsageRow{}).(int64)
	}
	return writeTable(t.w, headers, right, t.cells)
}

// writeTable writes an aligned text table, two spaces between columns, the
// columns marked right aligned to the right.
func writeTable(w io.Writer, headers []string, right []bool, rows [][]string) error {
	widths := make([]int, len(headers))
	for i, h := range headers {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	var out, line strings.Builder
	for _, cells := range append([][]string{headers}, rows...) {
		line.Reset()
		for i, cell := range cells {
			if i > 0 {
				line.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			if i < len(right) && right[i] {
				line.WriteString(pad + cell)
			} else {
				line.WriteString(cell + pad)
			}
		}
		out.WriteString(strings.TrimRight(line.String(), " "))
		out.WriteString("\n")
	}
	_, err := io.WriteString(w, out.String())
	return err
}

// csvRows writes RFC 4180 CSV with a heading of the contract's field names.
type csvRows struct {
	w      *csv.Writer
	cols   []column
	headed bool
}

func (c *csvRows) header() {
	if c.headed {
		return
	}
	c.headed = true
	keys := make([]string, len(c.cols))
	for i, col := range c.cols {
		keys[i] = col.key
	}
	_ = c.w.Write(keys) // errors surface at Flush
}

func (c *csvRows) write(r client.UsageRow) error {
	c.header()
	rec := make([]string, len(c.cols))
	for i, col := range c.cols {
		switch v := col.get(r).(type) {
		case string:
			rec[i] = v
		case int64:
			rec[i] = strconv.FormatInt(v, 10)
		case time.Time:
			rec[i] = formatDate(v)
		}
	}
	return c.w.Write(rec)
}

func (c *csvRows) close() error {
	c.header()
	c.w.Flush()
	return c.w.Error()
}

// jsonRows writes the contract's ApiUsageQueryResult, a row a line, as rows
// arrive, so that a long search is not held in memory. Each row has exactly
// the columns asked for, in their order.
type jsonRows struct {
	w    io.Writer
	cols []column
	n    int
}

func (j *jsonRows) write(r client.UsageRow) error {
	var b bytes.Buffer
	if j.n == 0 {
		b.WriteString("{\n  \"results\": [\n    {")
	} else {
		b.WriteString(",\n    {")
	}
	j.n++
	for i, c := range j.cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(jsonString(c.key))
		b.WriteString(": ")
		switch v := c.get(r).(type) {
		case string:
			b.WriteString(jsonString(v))
		case int64:
			b.WriteString(strconv.FormatInt(v, 10))
		case time.Time:
			b.WriteString(jsonString(formatDate(v)))
		}
	}
	b.WriteString("}")
	_, err := j.w.Write(b.Bytes())
	return err
}

func (j *jsonRows) close() error {
	end := "\n  ],\n  \"queryStatus\": \"Complete\"\n}\n"
	if j.n == 0 {
		end = "{\n  \"results\": [],\n  \"queryStatus\": \"Complete\"\n}\n"
	}
	_, err := io.WriteString(j.w, end)
	return err
}

// formatDate writes a bucket's date as the contract does; a row without a
// date has none.
func formatDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// jsonString encodes s as a JSON string, leaving <, > and & as they are.
func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}
