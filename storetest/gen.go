package storetest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/apiusage/apiusage"
)

// Gen makes random but reproducible events and queries over a small world of
// organizations, clients, users, templates and methods, with times that
// cluster on the edges that stores get wrong: the first and last instant of an
// hour, ends of days, ISO weeks, months and years, and leap days.
//
// A Gen is not safe for concurrent use.
type Gen struct {
	rng *rand.Rand
	// Orgs, Clients (per org), Users and Templates are the world's values.
	Orgs      []string
	Clients   map[string][]string
	Users     []string
	Templates []string
	Methods   []string
	Statuses  []int
	// Anchors are the instants events cluster around.
	Anchors []time.Time
	// Prefix starts every event id and idempotency key g makes.
	Prefix string
	next   int
	keys   []string
	old    []apiusage.Event
}

// NewGen returns a Gen seeded with seed.
func NewGen(seed uint64) *Gen {
	g := &Gen{
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		Orgs:    []string{"org-a", "org-b", "org-c"},
		Clients: map[string][]string{},
		Users:   []string{"", "", "user-1", "user-2", "user-3", "üser-ß"},
		Templates: []string{
			"api/v2/users/{userId}", "api/v2/users", "api/v2/analytics/conversations/details/query",
			"api/v2/routing/queues/{queueId}/members", "api/v2/usage/query",
		},
		Methods:  []string{"GET", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"},
		Statuses: []int{200, 200, 201, 204, 301, 304, 400, 401, 404, 429, 429, 500, 502, 503, 100, 101},
	}
	for i, org := range g.Orgs {
		for j := range 3 + i {
			g.Clients[org] = append(g.Clients[org], fmt.Sprintf("client-%d%d", i, j))
		}
	}
	// A client id shared by two organizations: filters and groups must not
	// mix them up.
	g.Clients["org-b"] = append(g.Clients["org-b"], "client-00")
	g.Anchors = []time.Time{
		date(2023, 12, 31, 23, 0),  // year end (a Sunday)
		date(2024, 1, 1, 0, 0),     // year start (a Monday)
		date(2024, 2, 28, 23, 0),   // the day before a leap day
		date(2024, 2, 29, 12, 0),   // leap day
		date(2024, 3, 1, 0, 0),     // month start after a leap day
		date(2024, 3, 10, 23, 0),   // Sunday night: a week boundary
		date(2024, 3, 31, 23, 0),   // month end
		date(2020, 12, 31, 23, 0),  // the end of ISO week 53
		date(2021, 1, 3, 23, 0),    // Sunday before a week that starts in the year
		date(2024, 4, 15, 7, 0),    // an ordinary day
		date(2024, 5, 20, 13, 0),   // another month
		date(2025, 2, 28, 23, 0),   // the end of February in a common year
		date(2025, 12, 29, 0, 0),   // a Monday in ISO week 1 of 2026
		date(1970, 1, 1, 0, 0),     // the epoch
		date(2024, 10, 27, 1, 0),   // a night with a DST change elsewhere
		date(2026, 11, 25, 10, 15), // the contract's example day
	}
	return g
}

func date(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, time.UTC)
}

// Rand returns g's source of randomness.
func (g *Gen) Rand() *rand.Rand { return g.rng }

// Time returns a random instant near an anchor: on the exact first or last
// nanosecond of an hour about a third of the time, elsewhere otherwise.
func (g *Gen) Time() time.Time {
	a := g.Anchors[g.rng.IntN(len(g.Anchors))]
	hour := a.Add(time.Duration(g.rng.IntN(7)-3) * time.Hour).Truncate(time.Hour)
	if hour.Before(date(1970, 1, 1, 0, 0)) {
		hour = date(1970, 1, 1, 0, 0)
	}
	switch g.rng.IntN(6) {
	case 0:
		return hour
	case 1:
		return hour.Add(time.Hour - time.Nanosecond)
	default:
		return hour.Add(time.Duration(g.rng.Int64N(int64(time.Hour))))
	}
}

// Event returns a random valid, normalized event without an id.
func (g *Gen) Event() apiusage.Event {
	org := g.Orgs[g.rng.IntN(len(g.Orgs))]
	clients := g.Clients[org]
	client := clients[g.rng.IntN(len(clients))]
	e := apiusage.Event{
		Time:           g.Time(),
		OrganizationID: org,
		ClientID:       client,
		UserID:         g.Users[g.rng.IntN(len(g.Users))],
		TemplateURI:    g.Templates[g.rng.IntN(len(g.Templates))],
		Method:         g.Methods[g.rng.IntN(len(g.Methods))],
		Status:         g.Statuses[g.rng.IntN(len(g.Statuses))],
	}
	if g.rng.IntN(4) == 0 {
		e.ClientName = fmt.Sprintf("Name of %s v%d", client, g.rng.IntN(3))
	}
	return e
}

// ID returns a fresh event id.
func (g *Gen) ID() string {
	g.next++
	return fmt.Sprintf("%sevt-%d", g.Prefix, g.next)
}

// Namespace prefixes g's organizations, clients, ids and keys with p, so
// that the batches of several Gens never share an organization, a client, an
// id or a key, and their effects (client names included) do not depend on
// the order they are appended in.
func (g *Gen) Namespace(p string) {
	for i, org := range g.Orgs {
		var clients []string
		for _, c := range g.Clients[org] {
			clients = append(clients, p+c)
		}
		delete(g.Clients, org)
		g.Clients[p+org] = clients
		g.Orgs[i] = p + org
	}
	g.Prefix = p
}

// Batches returns n random batches of sizes up to maxSize. Some batches carry
// an idempotency key, some repeat a key of an earlier batch (of this or an
// earlier call), some repeat ids of earlier events (in the same batch and
// across batches), and the middle one is empty.
func (g *Gen) Batches(n, maxSize int) []apiusage.Batch {
	r := g.rng
	var out []apiusage.Batch
	for i := range n {
		size := 1 + r.IntN(maxSize)
		if i == n/2 {
			size = 0
		}
		b := apiusage.Batch{Events: g.Events(size)}
		for j := range b.Events {
			if len(g.old) > 0 && r.IntN(15) == 0 {
				// An event id seen before: counted once. Its other fields
				// differ, which is how a store counting twice shows.
				prev := g.old[r.IntN(len(g.old))]
				b.Events[j].ID = prev.ID
				b.Events[j].OrganizationID = prev.OrganizationID
				b.Events[j].ClientID = prev.ClientID
			}
			if j > 0 && r.IntN(30) == 0 && b.Events[j-1].ID != "" {
				b.Events[j].ID = b.Events[j-1].ID
				b.Events[j].OrganizationID = b.Events[j-1].OrganizationID
			}
		}
		switch {
		case len(g.keys) > 0 && r.IntN(6) == 0:
			b.IdempotencyKey = g.keys[r.IntN(len(g.keys))]
		case r.IntN(2) == 0:
			g.next++
			b.IdempotencyKey = fmt.Sprintf("%skey-%d", g.Prefix, g.next)
			g.keys = append(g.keys, b.IdempotencyKey)
		}
		for _, e := range b.Events {
			if e.ID != "" {
				g.old = append(g.old, e)
			}
		}
		out = append(out, b)
	}
	return out
}

// Events returns n random events; about a third carry a fresh id.
func (g *Gen) Events(n int) []apiusage.Event {
	out := make([]apiusage.Event, n)
	for i := range out {
		out[i] = g.Event()
		if g.rng.IntN(3) == 0 {
			out[i].ID = g.ID()
		}
	}
	return out
}

// Query returns a random query over the world: any granularity, any subset of
// dimensions in any order, any filters (some naming values that do not
// exist), over an interval that is hour-aligned, day-aligned or not aligned
// at all, around an anchor or spanning all of them.
func (g *Gen) Query() apiusage.Query {
	r := g.rng
	var q apiusage.Query
	q.Granularity = []apiusage.Granularity{apiusage.GranularityNone, apiusage.GranularityDay,
		apiusage.GranularityWeek, apiusage.GranularityMonth}[r.IntN(4)]
	dims := []apiusage.Dimension{apiusage.DimClient, apiusage.DimOrganization, apiusage.DimUser,
		apiusage.DimTemplateURI, apiusage.DimMethod}
	r.Shuffle(len(dims), func(i, j int) { dims[i], dims[j] = dims[j], dims[i] })
	q.GroupBy = dims[:r.IntN(len(dims)+1)]

	if r.IntN(5) > 0 {
		q.OrganizationID = g.Orgs[r.IntN(len(g.Orgs))]
		if r.IntN(20) == 0 {
			q.OrganizationID = "org-none"
		}
	}
	if r.IntN(3) == 0 {
		all := slices.Concat(g.Clients[g.Orgs[0]], g.Clients[g.Orgs[1]], g.Clients[g.Orgs[2]], []string{"client-none"})
		q.ClientIDs = pick(r, all, 1+r.IntN(3))
	}
	if r.IntN(3) == 0 {
		q.Methods = pick(r, slices.Compact(slices.Sorted(slices.Values(g.Methods))), 1+r.IntN(2))
	}
	if r.IntN(4) == 0 {
		q.TemplateURIs = pick(r, append(slices.Clone(g.Templates), "api/v2/none"), 1+r.IntN(2))
	}
	q.Interval = g.Interval()
	return q
}

// Interval returns a random query interval.
func (g *Gen) Interval() apiusage.Interval {
	r := g.rng
	if r.IntN(8) == 0 {
		return apiusage.Interval{Start: date(1970, 1, 1, 0, 0), End: date(2030, 1, 1, 0, 0)}
	}
	a := g.Anchors[r.IntN(len(g.Anchors))]
	var start, end time.Time
	switch r.IntN(3) {
	case 0: // whole days
		start = a.Truncate(24*time.Hour).AddDate(0, 0, -r.IntN(3))
		end = start.AddDate(0, 0, 1+r.IntN(40))
	case 1: // whole hours
		start = a.Add(time.Duration(r.IntN(9)-5) * time.Hour)
		end = start.Add(time.Duration(1+r.IntN(72)) * time.Hour)
	default: // anywhere
		start = a.Add(time.Duration(r.Int64N(int64(10*time.Hour))) - 6*time.Hour)
		end = start.Add(time.Duration(1 + r.Int64N(int64(100*time.Hour))))
	}
	return apiusage.Interval{Start: start, End: end}
}

func pick(r *rand.Rand, from []string, n int) []string {
	out := slices.Clone(from)
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out[:min(n, len(out))]
}
