package server

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/apiusage/apiusage"
)

// queryResult is the contract's ApiUsageQueryResult. While an execution runs
// only queryStatus is written; once it has finished, results always is (an
// empty array for no rows).
type queryResult struct {
	Results     []rowJSON            `json:"results,omitzero"`
	QueryStatus apiusage.QueryStatus `json:"queryStatus"`
	Cursors     *cursors             `json:"cursors,omitempty"`
}

type cursors struct {
	After string `json:"after"`
}

// rowJSON is the contract's ApiUsageRow. Dimension fields are always
// written, empty when not grouped on, as the reference service does; the
// metrics and the date only when asked for. The pointers point into the
// execution's rows, so rendering allocates nothing per row.
type rowJSON struct {
	ClientID       string     `json:"clientId"`
	ClientName     string     `json:"clientName"`
	OrganizationID string     `json:"organizationId"`
	UserID         string     `json:"userId"`
	TemplateURI    string     `json:"templateUri"`
	HTTPMethod     string     `json:"httpMethod"`
	Status200      *int64     `json:"status200,omitempty"`
	Status300      *int64     `json:"status300,omitempty"`
	Status400      *int64     `json:"status400,omitempty"`
	Status500      *int64     `json:"status500,omitempty"`
	Status429      *int64     `json:"status429,omitempty"`
	Requests       *int64     `json:"requests,omitempty"`
	Date           *time.Time `json:"date,omitempty"`
}

// metricSet says which metrics (and whether the date) a row shows.
type metricSet struct {
	status200, status300, status400, status500, status429, requests, date bool
}

// render returns the JSON form of row r under the set.
func (m metricSet) render(r *apiusage.Row) rowJSON {
	out := rowJSON{
		ClientID:       r.ClientID,
		ClientName:     r.ClientName,
		OrganizationID: r.OrganizationID,
		UserID:         r.UserID,
		TemplateURI:    r.TemplateURI,
		HTTPMethod:     r.Method,
	}
	c := &r.Counts
	if m.status200 {
		out.Status200 = &c.Status200
	}
	if m.status300 {
		out.Status300 = &c.Status300
	}
	if m.status400 {
		out.Status400 = &c.Status400
	}
	if m.status500 {
		out.Status500 = &c.Status500
	}
	if m.status429 {
		out.Status429 = &c.Status429
	}
	if m.requests {
		out.Requests = &c.Requests
	}
	if m.date && !r.Date.IsZero() {
		out.Date = &r.Date
	}
	return out
}

// queryResults renders the result of an organization or client query.
func queryResults(x apiusage.Execution) queryResult {
	if x.Status != apiusage.StatusComplete {
		return unfinished(x)
	}
	var m metricSet
	for _, metric := range x.Metrics {
		switch metric {
		case apiusage.MetricStatus200:
			m.status200 = true
		case apiusage.MetricStatus300:
			m.status300 = true
		case apiusage.MetricStatus400:
			m.status400 = true
		case apiusage.MetricStatus500:
			m.status500 = true
		case apiusage.MetricStatus429:
			m.status429 = true
		case apiusage.MetricRequests:
			m.requests = true
		}
	}
	// run cleared the dates of queries without a granularity.
	m.date = true
	out := queryResult{QueryStatus: x.Status, Results: make([]rowJSON, len(x.Rows))}
	for i := range x.Rows {
		out.Results[i] = m.render(&x.Rows[i])
	}
	return out
}

// searchResults renders the page of a simple search's result that starts
// at offset.
func searchResults(x apiusage.Execution, offset, size int) queryResult {
	if x.Status != apiusage.StatusComplete {
		return unfinished(x)
	}
	var m metricSet
	name, method, template := false, false, false
	for _, col := range x.Columns {
		switch col {
		case apiusage.ColumnDate:
			m.date = true
		case apiusage.ColumnClientName:
			name = true
		case apiusage.ColumnHTTPMethod:
			method = true
		case apiusage.ColumnTemplateURI:
			template = true
		case apiusage.ColumnStatus200:
			m.status200 = true
		case apiusage.ColumnStatus300:
			m.status300 = true
		case apiusage.ColumnStatus400:
			m.status400 = true
		case apiusage.ColumnStatus500:
			m.status500 = true
		case apiusage.ColumnStatus429:
			m.status429 = true
		}
	}
	end := min(offset+size, len(x.Rows))
	out := queryResult{QueryStatus: x.Status, Results: make([]rowJSON, 0, end-offset)}
	for i := offset; i < end; i++ {
		row := m.render(&x.Rows[i])
		// The rows are grouped by client, method and template: a column
		// not asked for is written empty, like a dimension not grouped on.
		if !name {
			row.ClientID, row.ClientName = "", ""
		}
		if !method {
			row.HTTPMethod = ""
		}
		if !template {
			row.TemplateURI = ""
		}
		out.Results = append(out.Results, row)
	}
	if end < len(x.Rows) {
		out.Cursors = &cursors{After: makeCursor(x.ID, end)}
	}
	return out
}

// unfinished is the body of an execution that has no rows to show: just
// the status while running, and an empty result once failed.
func unfinished(x apiusage.Execution) queryResult {
	if x.Status == apiusage.StatusFailed {
		return queryResult{QueryStatus: x.Status, Results: []rowJSON{}}
	}
	return queryResult{QueryStatus: apiusage.StatusRunning}
}

// A cursor is opaque to callers: base64url of "<execution id>:<offset>". It
// is bound to its execution so that a cursor of one search is not taken for
// another's; it needs no secret, since a caller who can read a search can
// read any page of it anyway.
func makeCursor(executionID string, offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(executionID + ":" + strconv.Itoa(offset)))
}

// parseCursor returns the offset of a cursor of the execution, whose result
// has n rows.
func parseCursor(cursor, executionID string, n int) (int, error) {
	bad := badRequest("after: invalid cursor %q", cursor)
	if len(cursor) > 128 {
		return 0, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return 0, bad
	}
	id, off, ok := strings.Cut(string(raw), ":")
	if !ok || id != executionID {
		return 0, bad
	}
	offset, ok := parseSmallUint(off)
	if !ok || offset > n {
		return 0, bad
	}
	return offset, nil
}
