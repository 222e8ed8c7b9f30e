package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apiusage/apiusage"
)

// querySpec is one question of the set, as apiusage is asked it over HTTP
// and as the baselines are asked it (the same apiusage.Query semantics).
type querySpec struct {
	Name string
	// What the results table says the query is.
	Description string
	// Path and Body of the call that starts the execution (Body nil: a GET).
	Path string
	Body any
	// PageSize reads a simple search page by page.
	PageSize int
	// Query is the baselines' equivalent.
	Query apiusage.Query
	// Search marks a simple search: its rows have no requests column and
	// are compared as a set (their order is the server's).
	Search bool
}

// querySetup is what the query set is built from.
type querySetup struct {
	Start, End time.Time // the workload's span, whole days
	Org        string    // the organization asked about (apiusage's id)
	Client     string    // a registered client of Org, its busiest
	// SearchClients are clients of Org whose names the simple search
	// filters on, with their ids.
	SearchClients map[string]string // name → id
	Now           time.Time
}

func interval(a, b time.Time) string {
	return a.UTC().Format(time.DateOnly) + "/" + b.UTC().Format(time.DateOnly)
}

// buildQueries returns the query set.
func buildQueries(s querySetup) ([]querySpec, error) {
	all := apiusage.Interval{Start: s.Start, End: s.End}
	week := apiusage.Interval{Start: s.End.AddDate(0, 0, -7), End: s.End}
	days := int(s.Now.UTC().Truncate(24*time.Hour).Sub(s.End.AddDate(0, 0, -7)).Hours() / 24)
	if days > 366 {
		return nil, fmt.Errorf("the workload ends %s, too long ago for a summary (days at most 366): generate it with a later --end", s.End.Format(time.DateOnly))
	}
	days = max(days, 7)
	sumStart := s.Now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -days)
	names := make([]string, 0, len(s.SearchClients))
	ids := make([]string, 0, len(s.SearchClients))
	for n, id := range s.SearchClients {
		names = append(names, n)
		ids = append(ids, id)
	}
	slices.Sort(names)
	slices.Sort(ids)
	groupCTM := []apiusage.Dimension{apiusage.DimClient, apiusage.DimTemplateURI, apiusage.DimMethod}
	return []querySpec{
		{
			Name:        "org-90d-day-grouped",
			Description: "organization, 90 days, Day, groupBy OAuthClientId,TemplateUri,HttpMethod",
			Path:        "/api/v2/usage/query",
			Body: map[string]any{"interval": interval(s.Start, s.End), "granularity": "Day",
				"groupBy": []string{"OAuthClientId", "TemplateUri", "HttpMethod"}},
			Query: apiusage.Query{Interval: all, Granularity: apiusage.GranularityDay, OrganizationID: s.Org, GroupBy: groupCTM},
		},
		{
			Name:        "org-90d-month",
			Description: "organization, 90 days, Month, no groupBy (the contract's default: OAuthClientId)",
			Path:        "/api/v2/usage/query",
			Body:        map[string]any{"interval": interval(s.Start, s.End), "granularity": "Month"},
			Query: apiusage.Query{Interval: all, Granularity: apiusage.GranularityMonth, OrganizationID: s.Org,
				GroupBy: []apiusage.Dimension{apiusage.DimClient}},
		},
		{
			Name:        "org-7d-user",
			Description: "organization, last 7 days, Day, groupBy UserId",
			Path:        "/api/v2/usage/query",
			Body: map[string]any{"interval": interval(week.Start, week.End), "granularity": "Day",
				"groupBy": []string{"UserId"}},
			Query: apiusage.Query{Interval: week, Granularity: apiusage.GranularityDay, OrganizationID: s.Org,
				GroupBy: []apiusage.Dimension{apiusage.DimUser}},
		},
		{
			Name:        "client-90d",
			Description: "client (the busiest), 90 days, Day, groupBy TemplateUri,HttpMethod",
			Path:        "/api/v2/oauth/clients/" + s.Client + "/usage/query",
			Body: map[string]any{"interval": interval(s.Start, s.End), "granularity": "Day",
				"groupBy": []string{"TemplateUri", "HttpMethod"}},
			Query: apiusage.Query{Interval: all, Granularity: apiusage.GranularityDay, ClientIDs: []string{s.Client},
				GroupBy: []apiusage.Dimension{apiusage.DimTemplateURI, apiusage.DimMethod}},
		},
		{
			Name:        "simplesearch",
			Description: fmt.Sprintf("simple search, 90 days, %d client names, GET+POST, read to the last page (pageSize 1000)", len(names)),
			Path:        "/api/v2/usage/simplesearch",
			Body: map[string]any{"interval": interval(s.Start, s.End), "oauthClientNames": names,
				"httpMethods": []string{"GET", "POST"}},
			PageSize: 1000,
			Query: apiusage.Query{Interval: all, Granularity: apiusage.GranularityDay, OrganizationID: s.Org,
				ClientIDs: ids, Methods: []string{"GET", "POST"}, GroupBy: groupCTM},
			Search: true,
		},
		{
			Name:        "summary",
			Description: fmt.Sprintf("client summary (the busiest client), days=%d (the workload's last 7 days to today)", days),
			Path:        fmt.Sprintf("/api/v2/oauth/clients/%s/usage/summary?days=%d", s.Client, days),
			Query: apiusage.Query{Interval: apiusage.Interval{Start: sumStart, End: s.Now.Add(24 * time.Hour)},
				Granularity: apiusage.GranularityDay, ClientIDs: []string{s.Client},
				GroupBy: []apiusage.Dimension{apiusage.DimClient}},
		},
	}, nil
}

// decodeRows turns the Complete pages of an execution into rows.
func decodeRows(pages [][]byte, q querySpec) ([]apiusage.Row, error) {
	var rows []apiusage.Row
	for _, p := range pages {
		var res queryResult
		if err := json.Unmarshal(p, &res); err != nil {
			return nil, fmt.Errorf("%s: decode results: %w", q.Name, err)
		}
		for _, r := range res.Results {
			row := apiusage.Row{
				ClientID: r.ClientID, ClientName: r.ClientName, OrganizationID: r.OrganizationID,
				UserID: r.UserID, TemplateURI: r.TemplateURI, Method: r.HTTPMethod,
				Counts: apiusage.Counts{Status200: r.Status200, Status300: r.Status300, Status400: r.Status400,
					Status500: r.Status500, Status429: r.Status429, Requests: r.Requests},
			}
			if r.Date != nil {
				row.Date = r.Date.UTC()
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// normalize prepares rows for comparison: a simple search has no requests
// column and its own row order, so both sides drop the one and sort by
// (date, client, method, template).
func normalize(rows []apiusage.Row, q querySpec) []apiusage.Row {
	if !q.Search {
		return rows
	}
	out := slices.Clone(rows)
	for i := range out {
		out[i].Counts.Requests = 0
		out[i].OrganizationID = ""
	}
	slices.SortFunc(out, apiusage.CompareRows([]apiusage.Dimension{apiusage.DimClient, apiusage.DimMethod, apiusage.DimTemplateURI}))
	return out
}

// diffRows describes how got differs from want, or returns "" when they are
// equal.
func diffRows(got, want []apiusage.Row) string {
	var sb strings.Builder
	n := 0
	for i := 0; i < max(len(got), len(want)) && n < 5; i++ {
		var g, w *apiusage.Row
		if i < len(got) {
			g = &got[i]
		}
		if i < len(want) {
			w = &want[i]
		}
		if g != nil && w != nil && *g == *w {
			continue
		}
		n++
		fmt.Fprintf(&sb, "  row %d:\n    got  %s\n    want %s\n", i, fmtRow(g), fmtRow(w))
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d rows, want %d rows; first differences:\n%s", len(got), len(want), sb.String())
}

func fmtRow(r *apiusage.Row) string {
	if r == nil {
		return "(none)"
	}
	d := ""
	if !r.Date.IsZero() {
		d = r.Date.Format(time.DateOnly) + " "
	}
	return fmt.Sprintf("%sclient=%q name=%q org=%q user=%q tmpl=%q method=%q %+v",
		d, r.ClientID, r.ClientName, r.OrganizationID, r.UserID, r.TemplateURI, r.Method, r.Counts)
}
