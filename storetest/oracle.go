package storetest

import (
	"slices"
	"time"

	"github.com/apiusage/apiusage"
)

// Count answers q over events by brute force, one event at a time, the way
// the contract defines it. It is the oracle every store, and the server, is
// held to. Events are expected valid and normalized, and already free of
// duplicates (Count does not deduplicate ids). Client names are the last name
// given by an event of the client, in the order of events.
func Count(events []apiusage.Event, q apiusage.Query) []apiusage.Row {
	first, end := q.Interval.Hours()
	names := map[string]string{}
	for _, e := range events {
		if e.ClientName != "" {
			names[e.ClientID] = e.ClientName
		}
	}
	type key struct {
		date                            time.Time
		client, org, user, tmpl, method string
	}
	grouped := map[key]*apiusage.Counts{}
	var order []key
	for _, e := range events {
		h := floorHour(e.Time)
		if h < first || h >= end {
			continue
		}
		if q.OrganizationID != "" && e.OrganizationID != q.OrganizationID {
			continue
		}
		if len(q.ClientIDs) > 0 && !slices.Contains(q.ClientIDs, e.ClientID) {
			continue
		}
		if len(q.Methods) > 0 && !slices.Contains(q.Methods, e.Method) {
			continue
		}
		if len(q.TemplateURIs) > 0 && !slices.Contains(q.TemplateURIs, e.TemplateURI) {
			continue
		}
		k := key{date: q.Granularity.Truncate(e.Time)}
		for _, d := range q.GroupBy {
			switch d {
			case apiusage.DimClient:
				k.client = e.ClientID
			case apiusage.DimOrganization:
				k.org = e.OrganizationID
			case apiusage.DimUser:
				k.user = e.UserID
			case apiusage.DimTemplateURI:
				k.tmpl = e.TemplateURI
			case apiusage.DimMethod:
				k.method = e.Method
			}
		}
		c, ok := grouped[k]
		if !ok {
			c = new(apiusage.Counts)
			grouped[k] = c
			order = append(order, k)
		}
		c.CountStatus(e.Status)
	}
	rows := make([]apiusage.Row, 0, len(order))
	for _, k := range order {
		r := apiusage.Row{
			Date:           k.date,
			ClientID:       k.client,
			OrganizationID: k.org,
			UserID:         k.user,
			TemplateURI:    k.tmpl,
			Method:         k.method,
			Counts:         *grouped[k],
		}
		if k.client != "" {
			r.ClientName = names[k.client]
		}
		rows = append(rows, r)
	}
	slices.SortFunc(rows, apiusage.CompareRows(q.GroupBy))
	return rows
}

// floorHour returns the hour that holds t, in hours since the Unix epoch.
func floorHour(t time.Time) int64 {
	s := t.Unix()
	h := s / 3600
	if s%3600 < 0 {
		h--
	}
	return h
}
