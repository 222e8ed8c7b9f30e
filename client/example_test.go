package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/client"
	"github.com/apiusage/apiusage/internal/testserver"
)

// The examples run against a real server that TestMain starts; each gets an
// organization of its own from newExample.

var exampleServer *testserver.Server

func TestMain(m *testing.M) {
	tb := &mainTB{}
	exampleServer = testserver.Start(tb, testserver.Options{})
	code := m.Run()
	tb.cleanup()
	if tb.failed && code == 0 {
		code = 1
	}
	os.Exit(code)
}

// mainTB is the testing.TB of the server the examples share, which outlives
// every test. Only the methods testserver.Start calls are implemented; the
// embedded nil interface supplies the rest of the method set.
type mainTB struct {
	testing.TB
	cleanups []func()
	dirs     []string
	failed   bool
}

func (tb *mainTB) Helper() {}

func (tb *mainTB) TempDir() string {
	d, err := os.MkdirTemp("", "apiusage-client-example-")
	if err != nil {
		panic(err)
	}
	tb.dirs = append(tb.dirs, d)
	return d
}

func (tb *mainTB) Cleanup(f func())                  { tb.cleanups = append(tb.cleanups, f) }
func (tb *mainTB) Fatal(args ...any)                 { panic(fmt.Sprint(args...)) }
func (tb *mainTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (tb *mainTB) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	tb.failed = true
}

func (tb *mainTB) cleanup() {
	for i := len(tb.cleanups) - 1; i >= 0; i-- {
		tb.cleanups[i]()
	}
	for _, d := range tb.dirs {
		os.RemoveAll(d)
	}
}

// example is a fresh organization on the examples' server, with the id and
// secret of its admin client.
type example struct {
	URL, OrgID, ClientID, ClientSecret string
}

// newExample creates an organization for one example.
func newExample(name string) example {
	tb := &mainTB{}
	defer tb.cleanup()
	org := exampleServer.CreateOrg(tb, name)
	return example{URL: exampleServer.URL, OrgID: org.ID, ClientID: org.AdminID, ClientSecret: org.AdminSecret}
}

// exampleEvents are a few requests of two clients on two days.
func exampleEvents(orgID string) []apiusage.Event {
	at := func(day, hour int) time.Time { return time.Date(2026, 1, day, hour, 0, 0, 0, time.UTC) }
	e := func(t time.Time, clientID, name, method, uri string, status int) apiusage.Event {
		return apiusage.Event{Time: t, OrganizationID: orgID, ClientID: clientID, ClientName: name,
			TemplateURI: uri, Method: method, Status: status}
	}
	return []apiusage.Event{
		e(at(5, 9), "billing", "Billing app", "GET", "api/v2/users/{userId}", 200),
		e(at(5, 9), "billing", "Billing app", "GET", "api/v2/users/{userId}", 200),
		e(at(5, 10), "billing", "Billing app", "POST", "api/v2/analytics/conversations/details/query", 429),
		e(at(5, 11), "reports", "Reports", "GET", "api/v2/users", 200),
		e(at(6, 8), "billing", "Billing app", "GET", "api/v2/users/{userId}", 503),
		e(at(6, 9), "reports", "Reports", "GET", "api/v2/users", 404),
	}
}

func ExampleNew() {
	ex := newExample("Acme")
	ctx := context.Background()

	// Credentials of an OAuth client: the SDK gets and renews its token.
	c, err := client.New(ex.URL, client.WithClientCredentials(ex.ClientID, ex.ClientSecret))
	if err != nil {
		log.Fatal(err)
	}
	org, err := c.GetOrganization(ctx, ex.OrgID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(org.Name)
	// Output: Acme
}

func ExampleClient_QueryOrganization() {
	ex := newExample("Acme")
	ctx := context.Background()
	c, err := client.New(ex.URL, client.WithClientCredentials(ex.ClientID, ex.ClientSecret))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Append(ctx, apiusage.Batch{Events: exampleEvents(ex.OrgID)}); err != nil {
		log.Fatal(err)
	}

	res, err := c.QueryOrganization(ctx, apiusage.OrgQuery{
		Interval:    "2026-01-01/2026-02-01",
		Granularity: apiusage.GranularityDay,
		GroupBy:     []apiusage.Dimension{apiusage.DimClient},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range res.Results {
		fmt.Printf("%s %-11s requests=%d 2xx=%d 4xx=%d (429=%d) 5xx=%d\n",
			r.Date.Format(time.DateOnly), r.ClientName, r.Requests, r.Status200, r.Status400, r.Status429, r.Status500)
	}
	// Output:
	// 2026-01-05 Billing app requests=3 2xx=2 4xx=1 (429=1) 5xx=0
	// 2026-01-05 Reports     requests=1 2xx=1 4xx=0 (429=0) 5xx=0
	// 2026-01-06 Billing app requests=1 2xx=0 4xx=0 (429=0) 5xx=1
	// 2026-01-06 Reports     requests=1 2xx=0 4xx=1 (429=0) 5xx=0
}

func ExampleClient_WaitForExecution() {
	ex := newExample("Acme")
	ctx := context.Background()
	c, err := client.New(ex.URL, client.WithClientCredentials(ex.ClientID, ex.ClientSecret))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Append(ctx, apiusage.Batch{Events: exampleEvents(ex.OrgID)}); err != nil {
		log.Fatal(err)
	}

	// The raw call starts an execution; WaitForExecution polls its results.
	x, err := c.PostUsageQuery(ctx, apiusage.OrgQuery{
		Interval: "2026-01-05/P2D",
		GroupBy:  []apiusage.Dimension{apiusage.DimMethod},
		Metrics:  []apiusage.Metric{apiusage.MetricRequests},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := c.WaitForExecution(ctx, x)
	var failed *client.ExecutionFailedError
	switch {
	case errors.As(err, &failed):
		log.Fatalf("execution %s failed", failed.ExecutionID)
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println(res.QueryStatus)
	for _, r := range res.Results {
		fmt.Println(r.HTTPMethod, r.Requests)
	}
	// Output:
	// Complete
	// GET 5
	// POST 1
}

func ExampleClient_SearchRows() {
	ex := newExample("Acme")
	ctx := context.Background()
	c, err := client.New(ex.URL, client.WithClientCredentials(ex.ClientID, ex.ClientSecret))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Append(ctx, apiusage.Batch{Events: exampleEvents(ex.OrgID)}); err != nil {
		log.Fatal(err)
	}

	// Every row, however many pages they take (here pages of two rows).
	search := apiusage.SimpleSearch{Interval: "2026-01-01/2026-02-01", OAuthClientNames: []string{"Billing app"}}
	for row, err := range c.SearchRows(ctx, search, 2) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(row.Date.Format(time.DateOnly), row.HTTPMethod, row.TemplateURI, row.Status200, row.Status400, row.Status500)
	}
	// Output:
	// 2026-01-05 GET api/v2/users/{userId} 2 0 0
	// 2026-01-05 POST api/v2/analytics/conversations/details/query 0 1 0
	// 2026-01-06 GET api/v2/users/{userId} 0 0 1
}

func ExampleClient_PostUsageEvents() {
	ex := newExample("Acme")
	ctx := context.Background()
	c, err := client.New(ex.URL, client.WithClientCredentials(ex.ClientID, ex.ClientSecret))
	if err != nil {
		log.Fatal(err)
	}
	events := exampleEvents(ex.OrgID)

	// With an Idempotency-Key, sending a batch again (after a timeout, say)
	// answers as the first time and counts nothing twice.
	for range 2 {
		rc, err := c.PostUsageEvents(ctx, events, "export-2026-01-06-part-1")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("accepted", rc.Accepted)
	}
	res, err := c.QueryOrganization(ctx, apiusage.OrgQuery{Interval: "2026-01/2026-02", GroupBy: []apiusage.Dimension{apiusage.DimOrganization}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("requests", res.Results[0].Requests)
	// Output:
	// accepted 6
	// accepted 6
	// requests 6
}

func ExampleClient_CreateClient() {
	ex := newExample("Acme")
	ctx := context.Background()
	c, err := client.New(ex.URL, client.WithClientCredentials(ex.ClientID, ex.ClientSecret))
	if err != nil {
		log.Fatal(err)
	}
	created, err := c.CreateClient(ctx, client.ClientCreate{
		Name:        "Reports",
		Permissions: []apiusage.Permission{apiusage.PermUsageOrganization},
	})
	if err != nil {
		log.Fatal(err)
	}
	// The secret is in this answer only; the new client can log in with it.
	reports, err := client.New(ex.URL, client.WithClientCredentials(created.ID, created.Secret))
	if err != nil {
		log.Fatal(err)
	}
	_, err = reports.PostUsageSimplesearch(ctx, apiusage.SimpleSearch{Interval: "2026-01/2026-02"})
	fmt.Println(created.Name, created.Permissions)
	fmt.Println(apiusage.ErrorCode(err))
	// Output:
	// Reports [usage:organization:view]
	// missing.any.permissions
}
