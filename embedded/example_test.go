package embedded_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/embedded"
)

func Example() {
	dir, err := os.MkdirTemp("", "apiusage-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	s, err := embedded.Open(dir, embedded.Options{})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	ctx := context.Background()
	at := time.Date(2026, 11, 25, 10, 15, 2, 0, time.UTC)
	batch := apiusage.Batch{IdempotencyKey: "gateway-1:42", Events: []apiusage.Event{
		{ID: "e1", Time: at, OrganizationID: "acme", ClientID: "c1", ClientName: "Reports", TemplateURI: "api/v2/users/{userId}", Method: "GET", Status: 200},
		{ID: "e2", Time: at, OrganizationID: "acme", ClientID: "c1", TemplateURI: "api/v2/users/{userId}", Method: "GET", Status: 429},
		{ID: "e2", Time: at, OrganizationID: "acme", ClientID: "c1", TemplateURI: "api/v2/users/{userId}", Method: "GET", Status: 429},
	}}
	r, err := s.Append(ctx, batch)
	if err != nil {
		panic(err)
	}
	fmt.Printf("accepted %d, duplicates %d\n", r.Accepted, r.Duplicates)
	r, _ = s.Append(ctx, batch)
	fmt.Printf("again: replayed %v\n", r.Replayed)

	rows, err := s.Query(ctx, apiusage.Query{
		Interval:       apiusage.Interval{Start: at.Truncate(24 * time.Hour), End: at.Truncate(24*time.Hour).AddDate(0, 0, 1)},
		Granularity:    apiusage.GranularityDay,
		GroupBy:        []apiusage.Dimension{apiusage.DimClient},
		OrganizationID: "acme",
	})
	if err != nil {
		panic(err)
	}
	for _, row := range rows {
		fmt.Println(row.Date.Format("2006-01-02"), row.ClientID, row.ClientName, row.Counts.Requests, row.Counts.Status400, row.Counts.Status429)
	}
	// Output:
	// accepted 3, duplicates 1
	// again: replayed true
	// 2026-11-25 c1 Reports 2 1 1
}
