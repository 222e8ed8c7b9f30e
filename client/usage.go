package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/apiusage/apiusage"
)

// ExecutionResult is the answer of a call that starts an execution: the
// contract's UsageExecutionResult.
type ExecutionResult struct {
	ExecutionID string `json:"executionId"`
	// ResultsURI is the path, relative to the base URL, where the results
	// are read.
	ResultsURI string `json:"resultsUri"`
}

// QueryResult is a page of an execution's results: the contract's
// ApiUsageQueryResult. While the execution runs it holds only QueryStatus.
type QueryResult struct {
	Results     []UsageRow           `json:"results,omitempty"`
	QueryStatus apiusage.QueryStatus `json:"queryStatus"`
	// Cursors is set on a page of a simple search that has more pages.
	Cursors *Cursors `json:"cursors,omitempty"`
}

// Cursors page through a simple search's results.
type Cursors struct {
	// After is the cursor of the next page.
	After string `json:"after,omitempty"`
}

// UsageRow is one row of results: the contract's ApiUsageRow. Dimensions that
// are not grouped on are empty, metrics that were not asked for are zero, and
// Date is zero without a granularity.
type UsageRow struct {
	ClientID       string    `json:"clientId,omitempty"`
	ClientName     string    `json:"clientName,omitempty"`
	OrganizationID string    `json:"organizationId,omitempty"`
	UserID         string    `json:"userId,omitempty"`
	TemplateURI    string    `json:"templateUri,omitempty"`
	HTTPMethod     string    `json:"httpMethod,omitempty"`
	Status200      int64     `json:"status200,omitempty"`
	Status300      int64     `json:"status300,omitempty"`
	Status400      int64     `json:"status400,omitempty"`
	Status500      int64     `json:"status500,omitempty"`
	Status429      int64     `json:"status429,omitempty"`
	Requests       int64     `json:"requests,omitempty"`
	Date           time.Time `json:"date,omitzero"`
}

// Row returns r as the domain's row.
func (r UsageRow) Row() apiusage.Row {
	return apiusage.Row{
		Date:           r.Date,
		ClientID:       r.ClientID,
		ClientName:     r.ClientName,
		OrganizationID: r.OrganizationID,
		UserID:         r.UserID,
		TemplateURI:    r.TemplateURI,
		Method:         r.HTTPMethod,
		Counts: apiusage.Counts{
			Status200: r.Status200,
			Status300: r.Status300,
			Status400: r.Status400,
			Status500: r.Status500,
			Status429: r.Status429,
			Requests:  r.Requests,
		},
	}
}

// Page selects a page of a simple search's results.
type Page struct {
	// After is the cursor from the previous page's Cursors; empty for the
	// first page.
	After string
	// PageSize is the number of rows, at most 1000; zero means the
	// server's default (100).
	PageSize int
}

// MaxPageSize is the largest page of a simple search the server returns.
const MaxPageSize = 1000

// PostUsageQuery starts a query of the usage within the caller's
// organization (POST /api/v2/usage/query). Read its results with
// GetUsageQueryExecutionIdResults, or WaitForExecution.
func (c *Client) PostUsageQuery(ctx context.Context, body apiusage.OrgQuery) (*ExecutionResult, error) {
	return c.start(ctx, http.MethodPost, "/api/v2/usage/query", body)
}

// GetUsageQueryExecutionIdResults reads the results of an organization
// query (GET /api/v2/usage/query/{executionId}/results).
func (c *Client) GetUsageQueryExecutionIdResults(ctx context.Context, executionID string) (*QueryResult, error) {
	res, _, err := c.results(ctx, "/api/v2/usage/query/"+escape(executionID)+"/results", nil)
	return res, err
}

// PostUsageSimplesearch starts a simple search (POST
// /api/v2/usage/simplesearch). Read its rows page by page with
// GetUsageSimplesearchExecutionIdResults, or all of them with SearchRows.
func (c *Client) PostUsageSimplesearch(ctx context.Context, body apiusage.SimpleSearch) (*ExecutionResult, error) {
	return c.start(ctx, http.MethodPost, "/api/v2/usage/simplesearch", body)
}

// GetUsageSimplesearchExecutionIdResults reads a page of a simple search's
// results (GET /api/v2/usage/simplesearch/{executionId}/results).
func (c *Client) GetUsageSimplesearchExecutionIdResults(ctx context.Context, executionID string, page Page) (*QueryResult, error) {
	res, _, err := c.results(ctx, "/api/v2/usage/simplesearch/"+escape(executionID)+"/results", page.values())
	return res, err
}

// PostOauthClientUsageQuery starts a query of the usage of one OAuth client
// of the caller's organization (POST
// /api/v2/oauth/clients/{clientId}/usage/query).
func (c *Client) PostOauthClientUsageQuery(ctx context.Context, clientID string, body apiusage.ClientQuery) (*ExecutionResult, error) {
	return c.start(ctx, http.MethodPost, "/api/v2/oauth/clients/"+escape(clientID)+"/usage/query", body)
}

// GetOauthClientUsageQueryResult reads the results of a client query or a
// client summary (GET
// /api/v2/oauth/clients/{clientId}/usage/query/results/{executionId}). The
// arguments come in the official SDKs' order: the execution, then the client.
func (c *Client) GetOauthClientUsageQueryResult(ctx context.Context, executionID, clientID string) (*QueryResult, error) {
	res, _, err := c.results(ctx, "/api/v2/oauth/clients/"+escape(clientID)+"/usage/query/results/"+escape(executionID), nil)
	return res, err
}

// GetOauthClientUsageSummary starts the summary of a client's usage over the
// last days, one row a day (GET /api/v2/oauth/clients/{clientId}/usage/summary).
// days is from 1 to 366; zero means the server's default, 7. Read the results
// with GetOauthClientUsageQueryResult.
func (c *Client) GetOauthClientUsageSummary(ctx context.Context, clientID string, days int) (*ExecutionResult, error) {
	r := request{
		method: http.MethodGet,
		path:   "/api/v2/oauth/clients/" + escape(clientID) + "/usage/summary",
		// Starting a summary twice costs the server a second execution
		// and nothing else: it is a GET, retried as every GET is.
		idempotent: true,
	}
	if days != 0 {
		r.query = url.Values{"days": {strconv.Itoa(days)}}
	}
	var x ExecutionResult
	if _, err := c.do(ctx, r, &x); err != nil {
		return nil, err
	}
	return &x, nil
}

// start posts body to path and returns the execution it started. A POST is
// not retried: each one starts an execution.
func (c *Client) start(ctx context.Context, method, path string, body any) (*ExecutionResult, error) {
	r, err := jsonRequest(method, path, body)
	if err != nil {
		return nil, err
	}
	var x ExecutionResult
	if _, err := c.do(ctx, r, &x); err != nil {
		return nil, err
	}
	return &x, nil
}

// results reads a results endpoint and returns the result with the wait the
// server asked for before the next poll, if any.
func (c *Client) results(ctx context.Context, path string, query url.Values) (*QueryResult, time.Duration, error) {
	r := request{method: http.MethodGet, path: path, query: query, idempotent: true}
	var res QueryResult
	header, err := c.do(ctx, r, &res)
	if err != nil {
		return nil, 0, err
	}
	return &res, parseRetryAfter(header.Get("Retry-After"), c.now()), nil
}

func (p Page) values() url.Values {
	v := url.Values{}
	if p.After != "" {
		v.Set("after", p.After)
	}
	if p.PageSize > 0 {
		v.Set("pageSize", strconv.Itoa(p.PageSize))
	}
	return v
}
