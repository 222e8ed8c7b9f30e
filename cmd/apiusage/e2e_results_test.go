package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// TestE2ESimpleSearchRowCap checks that a simple search returns its first
// 20,000 rows and no more, in order, read a thousand a page, while an
// organization query over the same requests returns them all.
func TestE2ESimpleSearchRowCap(t *testing.T) {
	t.Parallel()
	const n = 20_050
	s := startServer(t, nil)
	orgID, admin := s.createOrganization(t, "Acme")
	token := s.token(t, admin.ID, admin.Secret)
	tmpl := func(i int) string { return fmt.Sprintf("api/v2/t/%05d", i) }
	events := make([]apiusage.Event, n)
	for i := range events {
		events[i] = apiusage.Event{Time: time.Date(2025, 4, 2, i%24, 0, 0, 0, time.UTC), OrganizationID: orgID,
			ClientID: admin.ID, TemplateURI: tmpl(i), Method: "GET", Status: 200}
	}
	s.ingest(t, token, events)
	s.e2eWaitRequests(t, token, "/api/v2/usage/query", n)

	rows := s.e2eSearch(t, token, map[string]any{"interval": "2025-04/2025-05", "metrics": []string{"TemplateUri", "Status200"}}, 1000)
	if len(rows) != 20_000 {
		t.Fatalf("simple search over %d rows: got %d rows, want the first 20,000", n, len(rows))
	}
	for i, r := range rows {
		if r["templateUri"] != tmpl(i) || r["status200"] != float64(1) {
			t.Fatalf("row %d: %v, want templateUri %s and status200 1", i, r, tmpl(i))
		}
	}
	all := s.query(t, token, "/api/v2/usage/query", map[string]any{"interval": "2025-04/2025-05", "groupBy": []string{"TemplateUri"}, "metrics": []string{"Requests"}})
	if len(all) != n {
		t.Errorf("organization query by template: %d rows, want %d", len(all), n)
	}
}

// TestE2EResultExpiry runs a server that keeps results for a second: a
// finished execution reads until then and is 404 after.
func TestE2EResultExpiry(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"APIUSAGE_RESULT_TTL": "1s"})
	_, admin := s.createOrganization(t, "Acme")
	token := s.token(t, admin.ID, admin.Secret)
	var xs []e2eExecution
	for _, c := range []struct {
		path string
		body any
	}{
		{"/api/v2/usage/query", map[string]any{"interval": "2025/2026"}},
		{"/api/v2/usage/simplesearch", map[string]any{"interval": "2025/2026"}},
		{"/api/v2/oauth/clients/" + admin.ID + "/usage/query", map[string]any{"interval": "2025/2026"}},
		{"/api/v2/oauth/clients/" + admin.ID + "/usage/summary", nil},
	} {
		x := s.e2eStart(t, token, c.path, c.body)
		s.e2eWait(t, token, x.ResultsURI)
		xs = append(xs, x)
	}
	time.Sleep(2500 * time.Millisecond)
	for _, x := range xs {
		resp := s.e2eRaw(t, e2eRequest{Method: http.MethodGet, Path: x.ResultsURI, Token: token})
		e2eCheckError(t, "GET "+x.ResultsURI+" after its results expired", resp, http.StatusNotFound, apiusage.CodeNotFound)
	}
}
