package apiusage

import (
	"errors"
	"slices"
	"strings"
	"time"
)

// Granularity is the size of the time buckets a query groups by. The zero
// value, GranularityNone, means one bucket for the whole interval.
type Granularity string

// Granularities, in their canonical spelling.
const (
	GranularityNone  Granularity = ""
	GranularityDay   Granularity = "Day"
	GranularityWeek  Granularity = "Week"
	GranularityMonth Granularity = "Month"
)

// Truncate returns the start of the bucket that holds t, in UTC: the day, the
// ISO week (Monday 00:00) or the calendar month. With GranularityNone every
// instant is in the same bucket, reported as the zero time.
func (g Granularity) Truncate(t time.Time) time.Time {
	t = t.UTC()
	y, m, d := t.Date()
	switch g {
	case GranularityDay:
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	case GranularityWeek:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return time.Date(y, m, d-back, 0, 0, 0, 0, time.UTC)
	case GranularityMonth:
		return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Time{}
}

// Metric is a count a query can return.
type Metric string

// Metrics, in their canonical spelling and in the order rows list them.
const (
	MetricStatus200 Metric = "Status200"
	MetricStatus300 Metric = "Status300"
	MetricStatus400 Metric = "Status400"
	MetricStatus500 Metric = "Status500"
	MetricStatus429 Metric = "Status429"
	MetricRequests  Metric = "Requests"
)

// AllMetrics lists every metric, the default of a query without metrics.
var AllMetrics = []Metric{MetricStatus200, MetricStatus300, MetricStatus400, MetricStatus500, MetricStatus429, MetricRequests}

// Dimension is a field a query can group by.
type Dimension string

// Dimensions, in their canonical spelling.
const (
	DimClient       Dimension = "OAuthClientId"
	DimOrganization Dimension = "OrganizationId"
	DimUser         Dimension = "UserId"
	DimTemplateURI  Dimension = "TemplateUri"
	DimMethod       Dimension = "HttpMethod"
)

// Column is a column of a simple search's rows.
type Column string

// Columns of a simple search, in their canonical spelling.
const (
	ColumnDate        Column = "Date"
	ColumnClientName  Column = "ClientName"
	ColumnHTTPMethod  Column = "HttpMethod"
	ColumnTemplateURI Column = "TemplateUri"
	ColumnStatus200   Column = "Status200"
	ColumnStatus300   Column = "Status300"
	ColumnStatus400   Column = "Status400"
	ColumnStatus500   Column = "Status500"
	ColumnStatus429   Column = "Status429"
)

// AllColumns lists every simple-search column, the default.
var AllColumns = []Column{ColumnDate, ColumnClientName, ColumnHTTPMethod, ColumnTemplateURI,
	ColumnStatus200, ColumnStatus300, ColumnStatus400, ColumnStatus500, ColumnStatus429}

// HTTPMethods lists the methods a simple search can filter on.
var HTTPMethods = []string{"GET", "POST", "DELETE", "PATCH", "PUT", "HEAD", "CONNECT", "OPTIONS", "TRACE"}

var (
	granularities  = []Granularity{GranularityDay, GranularityWeek, GranularityMonth}
	orgDimensions  = []Dimension{DimClient, DimOrganization, DimUser, DimTemplateURI, DimMethod}
	clientDimsOnly = []Dimension{DimClient, DimOrganization, DimTemplateURI, DimMethod}
)

// canonical returns the member of set that equals s ignoring case.
func canonical[T ~string](set []T, s string) (T, bool) {
	for _, v := range set {
		if strings.EqualFold(string(v), s) {
			return v, true
		}
	}
	var zero T
	return zero, false
}

// canonicalList canonicalizes every value of a list field, dropping repeats
// and reporting each unknown value.
func canonicalList[T ~string](field string, set, in []T) ([]T, error) {
	var out []T
	var errs []error
	for _, v := range in {
		c, ok := canonical(set, string(v))
		if !ok {
			errs = append(errs, Errorf(CodeBadRequest, "%s: unknown value %q", field, string(v)))
			continue
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, errors.Join(errs...)
}

// OrgQuery is the body of POST /api/v2/usage/query: usage within the caller's
// organization.
type OrgQuery struct {
	Interval    string      `json:"interval"`
	Granularity Granularity `json:"granularity,omitempty"`
	Metrics     []Metric    `json:"metrics,omitempty"`
	GroupBy     []Dimension `json:"groupBy,omitempty"`
}

// Normalize returns q with enum values in their canonical spelling and
// defaults applied (every metric; groupBy OAuthClientId), and the parsed
// interval. It reports every problem at once.
func (q OrgQuery) Normalize() (OrgQuery, Interval, error) {
	return normalizeQuery(q, orgDimensions)
}

// Validate reports every problem of q, joined; each is an *Error with
// CodeBadRequest.
func (q OrgQuery) Validate() error {
	_, _, err := q.Normalize()
	return err
}

// ClientQuery is the body of POST /api/v2/oauth/clients/{clientId}/usage/query:
// usage of one OAuth client. It has the fields of an OrgQuery; UserId is not
// a dimension it may group by.
type ClientQuery OrgQuery

// Normalize is OrgQuery.Normalize for a client query.
func (q ClientQuery) Normalize() (ClientQuery, Interval, error) {
	n, iv, err := normalizeQuery(OrgQuery(q), clientDimsOnly)
	return ClientQuery(n), iv, err
}

// Validate reports every problem of q, joined.
func (q ClientQuery) Validate() error {
	_, _, err := q.Normalize()
	return err
}

func normalizeQuery(q OrgQuery, dims []Dimension) (OrgQuery, Interval, error) {
	var errs []error
	var iv Interval
	if q.Interval == "" {
		errs = append(errs, Errorf(CodeBadRequest, "interval is required"))
	} else {
		var err error
		if iv, err = ParseInterval(q.Interval); err != nil {
			errs = append(errs, err)
		}
	}
	if q.Granularity != GranularityNone {
		g, ok := canonical(granularities, string(q.Granularity))
		if !ok {
			errs = append(errs, Errorf(CodeBadRequest, "granularity: unknown value %q", string(q.Granularity)))
		}
		q.Granularity = g
	}
	var err error
	if q.Metrics, err = canonicalList("metrics", AllMetrics, q.Metrics); err != nil {
		errs = append(errs, err)
	}
	if len(q.Metrics) == 0 {
		q.Metrics = slices.Clone(AllMetrics)
	}
	if q.GroupBy, err = canonicalList("groupBy", dims, q.GroupBy); err != nil {
		errs = append(errs, err)
	}
	if len(q.GroupBy) == 0 {
		q.GroupBy = []Dimension{DimClient}
	}
	return q, iv, errors.Join(errs...)
}

// SimpleSearch is the body of POST /api/v2/usage/simplesearch: rows of
// (day, client, method, template URI) within the caller's organization.
type SimpleSearch struct {
	Interval         string   `json:"interval"`
	Metrics          []Column `json:"metrics,omitempty"`
	OAuthClientNames []string `json:"oauthClientNames,omitempty"`
	HTTPMethods      []string `json:"httpMethods,omitempty"`
	TemplateURIs     []string `json:"templateUris,omitempty"`
}

// Normalize returns s with columns and methods in their canonical spelling,
// every column when none is named, and the parsed interval.
func (s SimpleSearch) Normalize() (SimpleSearch, Interval, error) {
	var errs []error
	var iv Interval
	if s.Interval == "" {
		errs = append(errs, Errorf(CodeBadRequest, "interval is required"))
	} else {
		var err error
		if iv, err = ParseInterval(s.Interval); err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	if s.Metrics, err = canonicalList("metrics", AllColumns, s.Metrics); err != nil {
		errs = append(errs, err)
	}
	if len(s.Metrics) == 0 {
		s.Metrics = slices.Clone(AllColumns)
	}
	if s.HTTPMethods, err = canonicalList("httpMethods", HTTPMethods, s.HTTPMethods); err != nil {
		errs = append(errs, err)
	}
	return s, iv, errors.Join(errs...)
}

// Validate reports every problem of s, joined.
func (s SimpleSearch) Validate() error {
	_, _, err := s.Normalize()
	return err
}

// Query is a validated question a Store answers: counts over an interval,
// restricted by the filters that are set, in buckets of the granularity,
// grouped by the dimensions.
type Query struct {
	Interval    Interval
	Granularity Granularity
	GroupBy     []Dimension

	// OrganizationID, when set, keeps only requests made in that organization.
	OrganizationID string
	// ClientIDs, when set, keeps only requests of these clients.
	ClientIDs []string
	// Methods, when set, keeps only requests with these methods.
	Methods []string
	// TemplateURIs, when set, keeps only requests to these template URIs.
	TemplateURIs []string
}

// Counts are the metrics of one row. Status400 includes Status429.
type Counts struct {
	Status200 int64
	Status300 int64
	Status400 int64
	Status500 int64
	Status429 int64
	Requests  int64
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Status200 += o.Status200
	c.Status300 += o.Status300
	c.Status400 += o.Status400
	c.Status500 += o.Status500
	c.Status429 += o.Status429
	c.Requests += o.Requests
}

// Get returns the count of the metric, or 0 for an unknown one.
func (c Counts) Get(m Metric) int64 {
	switch m {
	case MetricStatus200:
		return c.Status200
	case MetricStatus300:
		return c.Status300
	case MetricStatus400:
		return c.Status400
	case MetricStatus500:
		return c.Status500
	case MetricStatus429:
		return c.Status429
	case MetricRequests:
		return c.Requests
	}
	return 0
}

// CountStatus adds one request with the HTTP status code to c.
func (c *Counts) CountStatus(status int) {
	c.Requests++
	switch status / 100 {
	case 2:
		c.Status200++
	case 3:
		c.Status300++
	case 4:
		c.Status400++
		if status == 429 {
			c.Status429++
		}
	case 5:
		c.Status500++
	}
}

// Row is one result row: a bucket and the values of the grouped dimensions
// (empty for dimensions not grouped on), with the counts of the requests in it.
type Row struct {
	// Date is the start of the bucket; zero without a granularity.
	Date           time.Time
	ClientID       string
	ClientName     string
	OrganizationID string
	UserID         string
	TemplateURI    string
	Method         string
	Counts         Counts
}

// Dimension returns the row's value of d.
func (r Row) Dimension(d Dimension) string {
	switch d {
	case DimClient:
		return r.ClientID
	case DimOrganization:
		return r.OrganizationID
	case DimUser:
		return r.UserID
	case DimTemplateURI:
		return r.TemplateURI
	case DimMethod:
		return r.Method
	}
	return ""
}

// CompareRows orders rows by date, then by the grouped dimensions in the
// order they are grouped on: the order of every result.
func CompareRows(groupBy []Dimension) func(a, b Row) int {
	return func(a, b Row) int {
		if c := a.Date.Compare(b.Date); c != 0 {
			return c
		}
		for _, d := range groupBy {
			if c := strings.Compare(a.Dimension(d), b.Dimension(d)); c != 0 {
				return c
			}
		}
		return 0
	}
}
