// Package client is the Go SDK of apiusage: a client of the Usage API and of
// the platform endpoints (organizations, OAuth clients, ingestion) of an
// apiusage server, or of the Genesys Cloud service itself for the Usage API.
//
// It is shaped after the official Genesys Cloud SDKs, so that code written
// for one reads naturally with the other: one method per operation, named as
// the official SDKs name it (PostUsageQuery, GetUsageQueryExecutionIdResults,
// ...), taking the contract's request bodies and returning its response
// bodies, and the login host derived from the API host the same way
// ("//api." becomes "//login."). Beyond that it is plain Go: every call takes
// a context.Context, errors are *Error values carrying the contract's
// ErrorBody, and helpers do what every caller otherwise writes by hand:
// waiting for an execution (WaitForExecution, QueryOrganization), reading
// every row of a simple search across pages (SearchRows), listing every
// client (AllClients).
//
// A Client keeps no global state and is safe for concurrent use:
//
//	c, err := client.New("https://api.example.com",
//		client.WithClientCredentials(id, secret))
//	if err != nil { ... }
//	res, err := c.QueryOrganization(ctx, apiusage.OrgQuery{
//		Interval:    "2026-01-01/2026-02-01",
//		Granularity: apiusage.GranularityDay,
//	})
//
// Calls that are safe to repeat (every GET, and an ingest POST carrying an
// Idempotency-Key) are retried with jittered backoff on 429 and 5xx answers
// and on network errors, honouring Retry-After; other calls are never
// repeated behind the caller's back.
package client
