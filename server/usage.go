package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/apiusage/apiusage"
)

// maxSearchRows is the most rows a simple search returns, in all pages.
const maxSearchRows = 20_000

// Paging of simple-search results.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// executionResult is the contract's UsageExecutionResult.
type executionResult struct {
	ExecutionID string `json:"executionId"`
	ResultsURI  string `json:"resultsUri"`
}

// resultsURI returns the path of the results endpoint that reads x.
func resultsURI(x apiusage.Execution) string {
	switch x.Kind {
	case apiusage.KindSimpleSearch:
		return "/api/v2/usage/simplesearch/" + x.ID + "/results"
	case apiusage.KindClientQuery:
		return "/api/v2/oauth/clients/" + url.PathEscape(x.ClientID) + "/usage/query/results/" + x.ID
	}
	return "/api/v2/usage/query/" + x.ID + "/results"
}

// decodeOrgQuery reads and normalizes the body of endpoint 1.
func decodeOrgQuery(r io.Reader) (apiusage.OrgQuery, apiusage.Interval, error) {
	var q apiusage.OrgQuery
	if err := decodeJSON(r, &q); err != nil {
		return q, apiusage.Interval{}, err
	}
	return q.Normalize()
}

// decodeClientQuery reads and normalizes the body of endpoint 5.
func decodeClientQuery(r io.Reader) (apiusage.ClientQuery, apiusage.Interval, error) {
	var q apiusage.ClientQuery
	if err := decodeJSON(r, &q); err != nil {
		return q, apiusage.Interval{}, err
	}
	return q.Normalize()
}

// decodeSimpleSearch reads and normalizes the body of endpoint 3.
func decodeSimpleSearch(r io.Reader) (apiusage.SimpleSearch, apiusage.Interval, error) {
	var q apiusage.SimpleSearch
	if err := decodeJSON(r, &q); err != nil {
		return q, apiusage.Interval{}, err
	}
	return q.Normalize()
}

// handleOrgQuery is endpoint 1: usage within the caller's organization.
func (s *Server) handleOrgQuery() apiFunc {
	return func(r *http.Request, c *caller) (int, any, error) {
		q, iv, err := decodeOrgQuery(r.Body)
		if err != nil {
			return 0, nil, err
		}
		org := c.org()
		query := apiusage.Query{Interval: iv, Granularity: q.Granularity, GroupBy: q.GroupBy, OrganizationID: org}
		x := apiusage.Execution{Kind: apiusage.KindOrgQuery, OrganizationID: org, Metrics: q.Metrics}
		return s.start(r.Context(), x, queryView(q.Metrics, query.Granularity), func(ctx context.Context) (*apiusage.RowSet, error) {
			return s.queryRows(ctx, query)
		})
	}
}

// handleClientQuery is endpoint 5: usage of one client of the caller's
// organization, in every organization it made requests in.
func (s *Server) handleClientQuery() apiFunc {
	return func(r *http.Request, c *caller) (int, any, error) {
		client, err := s.clientOf(r.Context(), c, r.PathValue("clientId"))
		if err != nil {
			return 0, nil, err
		}
		q, iv, err := decodeClientQuery(r.Body)
		if err != nil {
			return 0, nil, err
		}
		return s.startClientQuery(r.Context(), c, client.ID, q, iv)
	}
}

// handleSummary is endpoint 7: the client query of the last days, by day.
func (s *Server) handleSummary() apiFunc {
	return func(r *http.Request, c *caller) (int, any, error) {
		params, err := queryParams(r)
		if err != nil {
			return 0, nil, err
		}
		days, err := parseDays(params.Get("days"))
		if err != nil {
			return 0, nil, err
		}
		client, err := s.clientOf(r.Context(), c, r.PathValue("clientId"))
		if err != nil {
			return 0, nil, err
		}
		now := s.cfg.Now().UTC()
		iv := apiusage.Interval{Start: apiusage.GranularityDay.Truncate(now).AddDate(0, 0, -days), End: now}
		q, _, err := apiusage.ClientQuery{Interval: iv.String(), Granularity: apiusage.GranularityDay}.Normalize()
		if err != nil {
			return 0, nil, wrap("summary query", err)
		}
		return s.startClientQuery(r.Context(), c, client.ID, q, iv)
	}
}

// queryParams parses the request's query string; a malformed one is a 400
// rather than parameters silently dropped.
func queryParams(r *http.Request) (url.Values, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("malformed query string: %s", err.Error())
	}
	return v, nil
}

// parseDays parses the summary's days: a whole number from 1 to 366, 7 when
// absent.
func parseDays(s string) (int, error) {
	if s == "" {
		return 7, nil
	}
	n, ok := parseSmallUint(s)
	if !ok || n < 1 || n > 366 {
		return 0, badRequest("days: must be a whole number from 1 to 366, got %q", s)
	}
	return n, nil
}

// parseSmallUint parses up to 9 decimal digits and nothing else (no sign, no
// spaces).
func parseSmallUint(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func (s *Server) startClientQuery(ctx context.Context, c *caller, clientID string, q apiusage.ClientQuery, iv apiusage.Interval) (int, any, error) {
	// Every organization: a client's usage is wherever it was used.
	query := apiusage.Query{Interval: iv, Granularity: q.Granularity, GroupBy: q.GroupBy, ClientIDs: []string{clientID}}
	x := apiusage.Execution{Kind: apiusage.KindClientQuery, OrganizationID: c.org(), ClientID: clientID, Metrics: q.Metrics}
	return s.start(ctx, x, queryView(q.Metrics, query.Granularity), func(ctx context.Context) (*apiusage.RowSet, error) {
		return s.queryRows(ctx, query)
	})
}

// queryRows runs an organization or client query, bounded by MaxResultRows.
func (s *Server) queryRows(ctx context.Context, q apiusage.Query) (*apiusage.RowSet, error) {
	rs, err := s.queryStore(ctx, q)
	if err != nil {
		return nil, err
	}
	if n := len(rs.Rows); n > s.cfg.MaxResultRows {
		s.releaseRows(rs)
		return nil, apiusage.Errorf(apiusage.CodeBadRequest,
			"The result has %d rows, more than the %d allowed; query a shorter interval or group by fewer dimensions.",
			n, s.cfg.MaxResultRows)
	}
	return rs, nil
}

// queryStore runs q on the store: as a RowSet when the store answers so,
// and otherwise as rows turned into one.
func (s *Server) queryStore(ctx context.Context, q apiusage.Query) (*apiusage.RowSet, error) {
	if rq, ok := s.store.(apiusage.RowSetQuerier); ok {
		rs, err := rq.QueryRowSet(ctx, q)
		if err != nil {
			return nil, wrap("query store", err)
		}
		return rs, nil
	}
	rows, err := s.store.Query(ctx, q)
	if err != nil {
		return nil, wrap("query store", err)
	}
	return rowSetOf(rows), nil
}

// releaseRows hands rs back to the store, when it came from one that takes
// it back.
func (s *Server) releaseRows(rs *apiusage.RowSet) {
	if rq, ok := s.store.(apiusage.RowSetQuerier); ok && rs != nil {
		rq.ReleaseRowSet(rs)
	}
}

// handleSimpleSearch is endpoint 3: rows of (day, client, method, template)
// in the caller's organization.
func (s *Server) handleSimpleSearch() apiFunc {
	return func(r *http.Request, c *caller) (int, any, error) {
		q, iv, err := decodeSimpleSearch(r.Body)
		if err != nil {
			return 0, nil, err
		}
		org := c.org()
		x := apiusage.Execution{Kind: apiusage.KindSimpleSearch, OrganizationID: org, Columns: q.Metrics}
		return s.start(r.Context(), x, searchView(q.Metrics), func(ctx context.Context) (*apiusage.RowSet, error) {
			query := apiusage.Query{
				Interval:       iv,
				Granularity:    apiusage.GranularityDay,
				GroupBy:        []apiusage.Dimension{apiusage.DimClient, apiusage.DimMethod, apiusage.DimTemplateURI},
				OrganizationID: org,
				Methods:        q.HTTPMethods,
				TemplateURIs:   q.TemplateURIs,
			}
			if len(q.OAuthClientNames) > 0 {
				ids, err := s.clientIDsNamed(ctx, org, q.OAuthClientNames)
				if err != nil {
					return nil, err
				}
				if len(ids) == 0 {
					// No client has these names: no rows, rather than an
					// empty filter that would keep every client.
					return &apiusage.RowSet{}, nil
				}
				query.ClientIDs = ids
			}
			rs, err := s.queryStore(ctx, query)
			if err != nil {
				return nil, err
			}
			if len(rs.Rows) > maxSearchRows {
				rs.Rows = rs.Rows[:maxSearchRows]
			}
			return rs, nil
		})
	}
}

// clientIDsNamed returns the ids of the clients whose name, as rows show it,
// is one of names: the registered clients of org by their current name, and
// the clients not registered in org by the name their events gave.
func (s *Server) clientIDsNamed(ctx context.Context, org string, names []string) ([]string, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	registered, err := s.dir.Clients(ctx, org)
	if err != nil {
		return nil, wrap("list clients", err)
	}
	inOrg := map[string]bool{}
	var ids []string
	for _, c := range registered {
		inOrg[c.ID] = true
		if want[c.Name] {
			ids = append(ids, c.ID)
		}
	}
	seen, err := s.store.ClientNames(ctx)
	if err != nil {
		return nil, wrap("client names", err)
	}
	for id, name := range seen {
		if !inOrg[id] && want[name] {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// start records a Running execution, queues its work and answers 202. The
// work's rows get their client names and become the execution's result, as
// view shows them.
func (s *Server) start(ctx context.Context, x apiusage.Execution, view tableView,
	work func(ctx context.Context) (*apiusage.RowSet, error)) (int, any, error) {
	if err := s.pool.reserve(x.OrganizationID); err != nil {
		return 0, nil, err
	}
	now := s.cfg.Now()
	x.ID = newID()
	x.Status = apiusage.StatusRunning
	x.Created = now
	x.Expires = now.Add(s.cfg.ResultTTL)
	if err := s.execs.Put(ctx, x); err != nil {
		s.pool.release(x.OrganizationID)
		return 0, nil, wrap("record execution", err)
	}
	s.metrics.executionsRunning.Inc()
	s.finishing.Store(x.ID, make(chan struct{}))
	s.pool.submit(x.OrganizationID, func(ctx context.Context) { s.run(ctx, x, view, work) })
	return http.StatusAccepted, executionResult{ExecutionID: x.ID, ResultsURI: resultsURI(x)}, nil
}

// run does an execution's work on a worker and records its result: the
// rows, as a table, in the result store, and the execution, Complete, in
// the registry (in that order, so that a poll that sees it Complete finds
// its rows unless they were dropped since).
func (s *Server) run(ctx context.Context, x apiusage.Execution, view tableView,
	work func(ctx context.Context) (*apiusage.RowSet, error)) {
	defer s.metrics.executionsRunning.Dec()
	started := time.Now()
	t, err := func() (t *table, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		rs, err := work(ctx)
		if err != nil {
			return nil, err
		}
		// The table holds nothing of rs: its memory may serve the next
		// query.
		defer s.releaseRows(rs)
		// Dates are written as the contract's 2020-02-02T00:00:00Z: UTC
		// (newTable formats them so), and nothing without a granularity
		// (the view says).
		return newTable(rs, view, s.clientNames(ctx, x.OrganizationID))
	}()
	s.metrics.queryDuration.WithLabelValues(string(x.Kind)).Observe(time.Since(started).Seconds())
	now := s.cfg.Now()
	x.Expires = now.Add(s.cfg.ResultTTL)
	if err != nil {
		x.Status = apiusage.StatusFailed
		x.Err = apiusage.ErrorMessage(err)
		s.log.Error("execution failed", "executionId", x.ID, "kind", x.Kind, "organizationId", x.OrganizationID, "err", err)
	} else {
		x.Status = apiusage.StatusComplete
		if !s.results.put(&result{id: x.ID, org: x.OrganizationID, expires: x.Expires, rows: t}, now) {
			s.log.Warn("result dropped at once: larger than the memory for results",
				"executionId", x.ID, "organizationId", x.OrganizationID, "rows", t.n, "bytes", t.bytes())
		}
	}
	s.metrics.executionsDone.WithLabelValues(string(x.Status)).Inc()
	// The result is recorded even when the pool is being stopped.
	if err := s.execs.Put(context.WithoutCancel(ctx), x); err != nil {
		s.log.Error("record execution result", "executionId", x.ID, "err", err)
	}
	if done, ok := s.finishing.LoadAndDelete(x.ID); ok {
		close(done.(chan struct{}))
	}
}

// clientNames returns the namer of an execution's rows: a client of the
// execution's organization is shown by its registered current name, and any
// other keeps the name its events gave, so that the registry does not tell
// one tenant another's client names.
func (s *Server) clientNames(ctx context.Context, org string) clientNamer {
	return func(id string) (string, bool, error) {
		c, err := s.dir.Client(ctx, id)
		switch {
		case err == nil && c.OrganizationID == org:
			return c.Name, true, nil
		case err == nil, apiusage.ErrorCode(err) == apiusage.CodeNotFound:
			return "", false, nil
		default:
			return "", false, wrap("load client", err)
		}
	}
}

// execution returns the execution with the id for the caller, when it is of
// the kind and (for client queries) the client of the path. Anything else,
// another organization's execution included, is ErrNotFound: ids do not leak.
// An execution running on this server is waited for, up to
// Config.PollWait, and returned as it is then.
func (s *Server) execution(ctx context.Context, c *caller, id string, kind apiusage.ExecutionKind, clientID string) (apiusage.Execution, error) {
	x, err := s.loadExecution(ctx, c, id, kind, clientID)
	if err != nil || x.Status != apiusage.StatusRunning || s.cfg.PollWait < 0 {
		return x, err
	}
	// Running here: wait a while for it to finish (see Config.PollWait).
	done, ok := s.finishing.Load(x.ID)
	if !ok {
		return x, nil
	}
	t := time.NewTimer(s.cfg.PollWait)
	defer t.Stop()
	select {
	case <-done.(chan struct{}):
		return s.loadExecution(ctx, c, id, kind, clientID)
	case <-t.C:
	case <-ctx.Done():
	}
	return x, nil
}

// loadExecution is execution without waiting.
func (s *Server) loadExecution(ctx context.Context, c *caller, id string, kind apiusage.ExecutionKind, clientID string) (apiusage.Execution, error) {
	x, err := s.execs.Get(ctx, id)
	if err != nil {
		if apiusage.ErrorCode(err) == apiusage.CodeNotFound {
			return x, apiusage.ErrNotFound
		}
		return x, wrap("load execution", err)
	}
	if x.OrganizationID != c.org() || x.Kind != kind || x.ClientID != clientID || !s.cfg.Now().Before(x.Expires) {
		return apiusage.Execution{}, apiusage.ErrNotFound
	}
	return x, nil
}

// handleOrgQueryResults is endpoint 2.
func (s *Server) handleOrgQueryResults() apiFunc {
	return func(r *http.Request, c *caller) (int, any, error) {
		x, err := s.execution(r.Context(), c, r.PathValue("executionId"), apiusage.KindOrgQuery, "")
		if err != nil {
			return 0, nil, err
		}
		return s.queryResults(x)
	}
}

// handleClientQueryResults is endpoint 6, for client queries and summaries.
func (s *Server) handleClientQueryResults() apiFunc {
	return func(r *http.Request, c *caller) (int, any, error) {
		x, err := s.execution(r.Context(), c, r.PathValue("executionId"), apiusage.KindClientQuery, r.PathValue("clientId"))
		if err != nil {
			return 0, nil, err
		}
		return s.queryResults(x)
	}
}

// handleSimpleSearchResults is endpoint 4: one page of a simple search.
func (s *Server) handleSimpleSearchResults() apiFunc {
	return func(r *http.Request, c *caller) (int, any, error) {
		params, err := queryParams(r)
		if err != nil {
			return 0, nil, err
		}
		size := defaultPageSize
		if v := params.Get("pageSize"); v != "" {
			n, ok := parseSmallUint(v)
			if !ok || n < 1 || n > maxPageSize {
				return 0, nil, badRequest("pageSize: must be a whole number from 1 to %d, got %q", maxPageSize, v)
			}
			size = n
		}
		id := r.PathValue("executionId")
		x, err := s.execution(r.Context(), c, id, apiusage.KindSimpleSearch, "")
		if err != nil {
			return 0, nil, err
		}
		if x.Status != apiusage.StatusComplete {
			return http.StatusOK, unfinishedBody(x), nil
		}
		res := s.results.get(x.ID)
		if res == nil {
			return 0, nil, errEvicted
		}
		offset := 0
		if v := params.Get("after"); v != "" {
			if offset, err = parseCursor(v, x.ID, res.rows.n); err != nil {
				return 0, nil, err
			}
		}
		buf := pageBuffers.Get().(*[]byte)
		*buf = searchPage((*buf)[:0], res.rows, x.ID, offset, size)
		return http.StatusOK, resultsBody{b: *buf, done: func() { pageBuffers.Put(buf) }}, nil
	}
}

// clientOf returns the client with the id when it belongs to the caller's
// organization, and ErrNotFound otherwise.
func (s *Server) clientOf(ctx context.Context, c *caller, id string) (apiusage.Client, error) {
	client, err := s.dir.Client(ctx, id)
	if err != nil {
		if apiusage.ErrorCode(err) == apiusage.CodeNotFound {
			return client, apiusage.ErrNotFound
		}
		return client, wrap("load client", err)
	}
	if client.OrganizationID != c.org() {
		return apiusage.Client{}, apiusage.ErrNotFound
	}
	return client, nil
}
