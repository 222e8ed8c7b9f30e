package server

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// checkDecodeError fails unless err is a caller's error: a 400 (or a 413),
// never an internal one, since malformed input is never the server's fault.
func checkDecodeError(t *testing.T, err error, allowed ...string) {
	t.Helper()
	code := apiusage.ErrorCode(err)
	for _, a := range allowed {
		if code == a {
			return
		}
	}
	t.Fatalf("error code %q (%v), want one of %q", code, err, allowed)
}

var querySeeds = []string{
	`{"interval":"2020-02-01/2020-02-28"}`,
	`{"interval":"2020-02-01T10:00:00Z/P1D","granularity":"day","metrics":["status200","Requests"],"groupBy":["templateuri","HttpMethod"]}`,
	`{"interval":"P7D/2020-02-08","granularity":"Week","groupBy":["UserId","OrganizationId","OAuthClientId"],"unknown":{"x":[1,2]}}`,
	`{"interval":"2020-01/2020-06","granularity":"Month","metrics":[]}`,
	`{"interval":"2020-02-30/2020-03-01"}`,
	`{"interval":""}`,
	`{"granularity":"Hour"}`,
	`{"interval":5}`,
	`{"interval":"2020/2021"} {}`,
	`[]`,
	`null`,
	``,
	`{"interval":"2020-02-01/2020-02-28","metrics":["Status600"],"groupBy":["Nope"]}`,
	"{\"interval\":\"2020-02-01/2020-02-02\",\"groupBy\":[\"\u017fize\"]}",
}

// FuzzDecodeOrgQuery holds the body decoder of POST /api/v2/usage/query to
// its contract: no panic, only caller errors, and a normalized result that
// normalizes to itself with a well-formed interval and defaults applied.
func FuzzDecodeOrgQuery(f *testing.F) {
	for _, s := range querySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		q, iv, err := decodeOrgQuery(bytes.NewReader(body))
		if err != nil {
			checkDecodeError(t, err, apiusage.CodeBadRequest)
			return
		}
		checkNormalized(t, q, iv, func() (apiusage.OrgQuery, apiusage.Interval, error) { return q.Normalize() })
		if len(q.Metrics) == 0 || len(q.GroupBy) == 0 {
			t.Fatalf("normalized query %+v has no metrics or no groupBy", q)
		}
	})
}

// FuzzDecodeClientQuery is FuzzDecodeOrgQuery for the client query, which
// may never group by user.
func FuzzDecodeClientQuery(f *testing.F) {
	for _, s := range querySeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"interval":"2020-02-01/2020-02-28","groupBy":["UserId"]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		q, iv, err := decodeClientQuery(bytes.NewReader(body))
		if err != nil {
			checkDecodeError(t, err, apiusage.CodeBadRequest)
			return
		}
		checkNormalized(t, q, iv, func() (apiusage.ClientQuery, apiusage.Interval, error) { return q.Normalize() })
		for _, d := range q.GroupBy {
			if d == apiusage.DimUser {
				t.Fatalf("client query %+v groups by user", q)
			}
		}
	})
}

// FuzzDecodeSimpleSearch is FuzzDecodeOrgQuery for the simple search.
func FuzzDecodeSimpleSearch(f *testing.F) {
	for _, s := range []string{
		`{"interval":"2020-02-01/2020-02-28"}`,
		`{"interval":"2020-02-01/2020-02-28","metrics":["date","ClientName","status429"],"oauthClientNames":["a","b"],"httpMethods":["get","PUT"],"templateUris":["api/v2/users/{userId}"]}`,
		`{"interval":"2020-02-01/2020-02-28","httpMethods":["FETCH"]}`,
		`{"interval":"2020-02-01/2020-02-28","metrics":["Requests"]}`,
		`{"interval":"2020-02-01/2020-02-28","oauthClientNames":"a"}`,
		`{"interval":"2020-02-01"}`,
		`{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		q, iv, err := decodeSimpleSearch(bytes.NewReader(body))
		if err != nil {
			checkDecodeError(t, err, apiusage.CodeBadRequest)
			return
		}
		checkNormalized(t, q, iv, func() (apiusage.SimpleSearch, apiusage.Interval, error) { return q.Normalize() })
		if len(q.Metrics) == 0 {
			t.Fatalf("normalized search %+v has no columns", q)
		}
	})
}

// checkNormalized fails unless normalizing the decoded value again gives it
// back unchanged, and its interval is non-empty.
func checkNormalized[T any](t *testing.T, got T, iv apiusage.Interval, again func() (T, apiusage.Interval, error)) {
	t.Helper()
	if !iv.Start.Before(iv.End) {
		t.Fatalf("interval %v: start not before end", iv)
	}
	q2, iv2, err := again()
	if err != nil {
		t.Fatalf("normalizing %+v again: %v", got, err)
	}
	if !reflect.DeepEqual(q2, got) || !iv2.Start.Equal(iv.Start) || !iv2.End.Equal(iv.End) {
		t.Fatalf("normalizing again gave %+v %v, want %+v %v", q2, iv2, got, iv)
	}
}

// FuzzDecodeEvents holds the ingestion decoder and validator to their
// contract: no panic, only 400 or 413, never more events than the bound, and
// every event of an accepted batch valid and normalized.
func FuzzDecodeEvents(f *testing.F) {
	valid := apiusage.Event{
		ID: "e1", Time: time.Date(2026, 11, 25, 10, 15, 2, 123e6, time.UTC), OrganizationID: "o", ClientID: "c",
		ClientName: "n", TemplateURI: "api/v2/users/{userId}", Method: "get", Status: 200,
	}
	one, _ := json.Marshal(valid)
	for _, seed := range []struct {
		body   string
		ndjson bool
	}{
		{"[" + string(one) + "," + string(one) + "]", false},
		{string(one), false},
		{string(one) + "\n" + string(one) + "\n", true},
		{"\n\n" + string(one) + "\r\n", true},
		{"[]", false},
		{"", false},
		{"", true},
		{"[" + string(one) + "] x", false},
		{"[" + string(one) + ",]", false},
		{`[{"timestamp":"yesterday"}]`, false},
		{`[{"status":"200"}]`, false},
		{`[{}]`, false},
		{`[1,2]`, false},
		{"[" + string(one) + "]", true},
		{`{"timestamp":"2026-11-25T10:15:02Z","organizationId":"o","clientId":"c","templateUri":"t","httpMethod":"FETCH","status":99}`, true},
		{strings.Repeat("["+string(one)+"]", 2), false},
	} {
		f.Add([]byte(seed.body), seed.ndjson)
	}
	const max = 20
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		events, err := decodeEvents(bytes.NewReader(body), ndjson, max)
		if err != nil {
			checkDecodeError(t, err, apiusage.CodeBadRequest, apiusage.CodeTooLarge)
			return
		}
		if len(events) > max {
			t.Fatalf("decoded %d events, more than the bound %d", len(events), max)
		}
		if err := validateEvents(events); err != nil {
			checkDecodeError(t, err, apiusage.CodeBadRequest)
			return
		}
		for i, e := range events {
			if err := e.Validate(); err != nil {
				t.Fatalf("event %d %+v accepted but invalid: %v", i, e, err)
			}
			if n := e.Normalize(); !reflect.DeepEqual(n, e) {
				t.Fatalf("event %d accepted as %+v, not normalized (%+v)", i, e, n)
			}
		}
	})
}
