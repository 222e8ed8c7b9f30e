// Package workload generates the benchmark's events: a deterministic stream
// of API requests, from a seed, in the NDJSON ingest format of
// POST /api/v2/usage/events (platform.md §4).
//
// The shape is the one the performance issue fixes: organizations, OAuth
// clients that each belong to one organization, users that each belong to
// one organization, template URIs and HTTP methods, over a number of days
// that end at a fixed date. Clients, users and templates are Zipf-skewed, a
// few carrying most of the traffic, as on a real platform; traffic follows a
// day/night and week cycle; statuses are realistic for each method, with
// bursts of 429 when a busy client runs into its rate limit; a tenth of the
// requests carry no user (client-credentials calls).
//
// Events come out in time order, as a real stream would, and fast: the
// generator writes the bytes itself rather than through encoding/json, so
// that producing the file never dominates a benchmark run.
package workload

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
)

// Config is the shape of a workload. The zero value of a field means its
// default, the shape.
type Config struct {
	// Seed makes the workload: the same Config gives the same bytes.
	Seed uint64
	// Events is how many events to write (default 10,000,000).
	Events int64
	// End is the exclusive end of the workload, a UTC midnight
	// (default 2026-11-01).
	End time.Time
	// Days is how many days end at End (default 90).
	Days int
	// Organizations, Clients, Users and Templates are the sizes of the
	// universe (defaults 20, 2,000, 50,000 and 400).
	Organizations int
	Clients       int
	Users         int
	Templates     int
}

// Defaults of Config.
const (
	DefaultEvents        = 10_000_000
	DefaultDays          = 90
	DefaultOrganizations = 20
	DefaultClients       = 2_000
	DefaultUsers         = 50_000
	DefaultTemplates     = 400
)

// DefaultEnd is the default end of the workload. It is fixed, not today, so
// that a seed names the same file on any day.
var DefaultEnd = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Events == 0 {
		c.Events = DefaultEvents
	}
	if c.End.IsZero() {
		c.End = DefaultEnd
	}
	if c.Days == 0 {
		c.Days = DefaultDays
	}
	if c.Organizations == 0 {
		c.Organizations = DefaultOrganizations
	}
	if c.Clients == 0 {
		c.Clients = DefaultClients
	}
	if c.Users == 0 {
		c.Users = DefaultUsers
	}
	if c.Templates == 0 {
		c.Templates = DefaultTemplates
	}
	return c
}

// Validate reports every problem of c (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Events < 0 {
		errs = append(errs, fmt.Errorf("events must not be negative, got %d", c.Events))
	}
	if !c.End.Equal(c.End.UTC().Truncate(24 * time.Hour)) {
		errs = append(errs, fmt.Errorf("end must be a UTC midnight, got %s", c.End.Format(time.RFC3339Nano)))
	}
	if c.Days < 1 || c.Days > 3660 {
		errs = append(errs, fmt.Errorf("days must be from 1 to 3660, got %d", c.Days))
	}
	if start := c.End.AddDate(0, 0, -c.Days); start.Year() < 1970 || c.End.Year() > 9999 {
		errs = append(errs, fmt.Errorf("days before end leave the years 1970 to 9999"))
	}
	if c.Organizations < 1 {
		errs = append(errs, fmt.Errorf("organizations must be at least 1, got %d", c.Organizations))
	}
	if c.Clients < c.Organizations {
		errs = append(errs, fmt.Errorf("clients must be at least the organizations (%d), got %d", c.Organizations, c.Clients))
	}
	if c.Users < c.Organizations {
		errs = append(errs, fmt.Errorf("users must be at least the organizations (%d), got %d", c.Organizations, c.Users))
	}
	if c.Templates < 1 || c.Templates > maxTemplates {
		errs = append(errs, fmt.Errorf("templates must be from 1 to %d, got %d", maxTemplates, c.Templates))
	}
	return errors.Join(errs...)
}

// Organization is an organization of the universe.
type Organization struct {
	ID string
	// Share is the organization's expected share of the events.
	Share float64
}

// Client is an OAuth client of the universe.
type Client struct {
	ID             string  `json:"id"`
	Name           string  `json:"name"`
	OrganizationID string  `json:"organizationId"`
	Share          float64 `json:"share"` // expected share of all events
	org            int
	templates      []int // the templates it calls, most called first
	pick           alias // over templates
}

// User is a user of the universe.
type User struct {
	ID  string
	org int
}

// Template is a template URI and the methods it is called with.
type Template struct {
	URI     string
	Methods []string
	pick    alias // over Methods
}

// Universe is everything a workload's events name.
type Universe struct {
	Organizations []Organization
	Clients       []Client
	Users         []User
	Templates     []Template
}

// OrganizationClients returns the clients of organization i, the busiest
// first.
func (u *Universe) OrganizationClients(i int) []Client {
	var out []Client
	for _, c := range u.Clients {
		if c.org == i {
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b Client) int {
		switch {
		case a.Share > b.Share:
			return -1
		case a.Share < b.Share:
			return 1
		}
		return 0
	})
	return out
}

// Methods are the HTTP methods of the workload.
var Methods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}

// Generator writes a workload's events.
type Generator struct {
	cfg   Config
	u     *Universe
	start time.Time

	clients alias   // over Universe.Clients
	users   []alias // per organization, over orgUsers
	orgUser [][]int // per organization, its users, the busiest first
	status  map[string]statusTable

	// Bytes written for every event, ready to append.
	orgJSON    [][]byte // `"organizationId":"…","clientId":"` per client
	clientJSON [][]byte // `…","clientName":"…","userId":"` per client
	userJSON   [][]byte // the user id
	tmplJSON   [][]byte // `","templateUri":"…","httpMethod":"` per template
	methodJSON map[string][]byte
}

type statusTable struct {
	codes []int
	json  [][]byte // `","status":200}` + "\n" is written by the caller
	pick  alias
}

// New builds the universe of cfg and a Generator of its events.
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("workload config: %w", err)
	}
	cfg = cfg.withDefaults()
	g := &Generator{cfg: cfg, start: cfg.End.AddDate(0, 0, -cfg.Days)}
	// The universe has its own stream, so that the events' sizes do not
	// change it: the same seed names the same clients at any --events.
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x756e6976657273)) // "univers"
	g.buildUniverse(rng)
	g.buildTables()
	return g, nil
}

// Universe returns what the events name. It must not be modified.
func (g *Generator) Universe() *Universe { return g.u }

// Config returns the generator's configuration with its defaults applied.
func (g *Generator) Config() Config { return g.cfg }

// Start returns the first instant of the workload.
func (g *Generator) Start() time.Time { return g.start }

func (g *Generator) buildUniverse(rng *rand.Rand) {
	cfg := g.cfg
	u := &Universe{}

	// Organizations: a Zipf law over sizes, so that a few large tenants sit
	// beside many small ones.
	orgW := zipfWeights(cfg.Organizations, 1.0)
	rng.Shuffle(len(orgW), func(i, j int) { orgW[i], orgW[j] = orgW[j], orgW[i] })
	orgPick := newAlias(orgW)
	for range cfg.Organizations {
		u.Organizations = append(u.Organizations, Organization{ID: uuid(rng)})
	}

	u.Templates = makeTemplates(cfg.Templates)
	// Template popularity across the platform: a client picks its templates
	// from it, so that some (users/me, the conversations) are everywhere.
	tmplPopular := newAlias(zipfWeights(cfg.Templates, 1.0))

	clientW := zipfWeights(cfg.Clients, 1.1)
	rng.Shuffle(len(clientW), func(i, j int) { clientW[i], clientW[j] = clientW[j], clientW[i] })
	var clientSum float64
	for _, w := range clientW {
		clientSum += w
	}
	for i := range cfg.Clients {
		org := orgPick.sample(rng.Uint64())
		if i < cfg.Organizations {
			org = i // every organization has at least one client
		}
		// An integration calls a handful of endpoints, a portal dozens.
		n := 2 + int(math.Pow(rng.Float64(), 3)*60)
		n = min(n, cfg.Templates)
		var tmpls []int
		for len(tmpls) < n {
			t := tmplPopular.sample(rng.Uint64())
			if !slices.Contains(tmpls, t) {
				tmpls = append(tmpls, t)
			}
		}
		c := Client{
			ID:             uuid(rng),
			Name:           clientName(i, rng),
			org:            org,
			OrganizationID: u.Organizations[org].ID,
			Share:          clientW[i] / clientSum,
			templates:      tmpls,
			pick:           newAlias(zipfWeights(len(tmpls), 1.2)),
		}
		u.Organizations[org].Share += c.Share
		u.Clients = append(u.Clients, c)
	}

	g.orgUser = make([][]int, cfg.Organizations)
	for i := range cfg.Users {
		org := orgPick.sample(rng.Uint64())
		if i < cfg.Organizations {
			org = i
		}
		u.Users = append(u.Users, User{ID: uuid(rng), org: org})
		g.orgUser[org] = append(g.orgUser[org], i)
	}
	for org, users := range g.orgUser {
		rng.Shuffle(len(users), func(i, j int) { users[i], users[j] = users[j], users[i] })
		g.users = append(g.users, newAlias(zipfWeights(len(g.orgUser[org]), 1.0)))
	}
	g.u = u
}

func (g *Generator) buildTables() {
	u := g.u
	g.clients = newAlias(func() []float64 {
		w := make([]float64, len(u.Clients))
		for i, c := range u.Clients {
			w[i] = c.Share
		}
		return w
	}())
	for _, c := range u.Clients {
		g.orgJSON = append(g.orgJSON, []byte(`,"organizationId":"`+c.OrganizationID+`","clientId":"`))
		g.clientJSON = append(g.clientJSON, []byte(c.ID+`","clientName":"`+c.Name+`","userId":"`))
	}
	for _, us := range u.Users {
		g.userJSON = append(g.userJSON, []byte(us.ID))
	}
	for _, t := range u.Templates {
		g.tmplJSON = append(g.tmplJSON, []byte(`","templateUri":"`+t.URI+`","httpMethod":"`))
	}
	g.methodJSON = map[string][]byte{}
	for _, m := range Methods {
		g.methodJSON[m] = []byte(m)
	}
	g.status = map[string]statusTable{}
	for m, dist := range statusByMethod {
		var st statusTable
		var w []float64
		for _, cw := range dist {
			st.codes = append(st.codes, cw.code)
			st.json = append(st.json, []byte(`","status":`+strconv.Itoa(cw.code)+"}\n"))
			w = append(w, cw.weight)
		}
		st.pick = newAlias(w)
		g.status[m] = st
	}
}

type codeWeight struct {
	code   int
	weight float64
}

// statusByMethod are the statuses of a request outside a throttling burst:
// mostly success, the client errors integrations really make (a 404 on a
// deleted entity, a 409 on a concurrent edit), and a little 429 and 5xx.
var statusByMethod = map[string][]codeWeight{
	"GET":    {{200, 0.90}, {304, 0.03}, {400, 0.01}, {401, 0.006}, {403, 0.006}, {404, 0.035}, {429, 0.004}, {500, 0.006}, {503, 0.003}},
	"POST":   {{200, 0.30}, {201, 0.58}, {202, 0.03}, {400, 0.04}, {404, 0.01}, {409, 0.02}, {429, 0.005}, {500, 0.01}, {502, 0.005}},
	"PUT":    {{200, 0.90}, {400, 0.04}, {404, 0.02}, {409, 0.02}, {429, 0.005}, {500, 0.01}, {503, 0.005}},
	"PATCH":  {{200, 0.90}, {400, 0.04}, {404, 0.02}, {409, 0.02}, {429, 0.005}, {500, 0.01}, {503, 0.005}},
	"DELETE": {{204, 0.90}, {403, 0.005}, {404, 0.07}, {429, 0.005}, {500, 0.02}},
	"HEAD":   {{200, 0.95}, {404, 0.04}, {500, 0.01}},
}

// zipfWeights returns the weights 1/k^s of the ranks 1..n.
func zipfWeights(n int, s float64) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = 1 / math.Pow(float64(i+1), s)
	}
	return w
}

// uuid returns a random (version 4) UUID from rng, as platforms name clients,
// users and organizations.
func uuid(rng *rand.Rand) string {
	var b [16]byte
	hi, lo := rng.Uint64(), rng.Uint64()
	for i := range 8 {
		b[i] = byte(hi >> (8 * i))
		b[8+i] = byte(lo >> (8 * i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, x := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[x>>4], hex[x&0xf])
	}
	return string(out)
}

var (
	nameWords1 = []string{"Acme", "Blue", "Nordic", "Rapid", "Quiet", "Bright", "Central", "Delta", "Echo", "Summit", "Harbor", "Vector"}
	nameWords2 = []string{"Sync", "Dashboard", "Reporting", "CRM Connector", "WFM Export", "Bot", "Recorder", "Survey", "Billing", "Portal", "Dialer", "Analytics"}
)

// clientName returns a unique client name: words and the client's number,
// all JSON-safe so that the writer needs no escaping.
func clientName(i int, rng *rand.Rand) string {
	return nameWords1[rng.IntN(len(nameWords1))] + " " + nameWords2[rng.IntN(len(nameWords2))] + " " + strconv.Itoa(i+1)
}

// Resources and the shapes of template URIs built on them; each shape has
// the methods it is called with.
var (
	resources = []string{
		"users", "groups", "conversations", "conversations/calls", "conversations/chats",
		"conversations/emails", "conversations/messages", "routing/queues", "routing/skills",
		"routing/wrapupcodes", "routing/languages", "analytics/conversations", "analytics/users",
		"analytics/queues", "architect/flows", "architect/prompts", "outbound/campaigns",
		"outbound/contactlists", "outbound/dnclists", "recording/recordings", "quality/evaluations",
		"quality/forms", "workforcemanagement/schedules", "workforcemanagement/timeoffrequests",
		"externalcontacts/contacts", "externalcontacts/organizations", "knowledge/documents",
		"telephony/edges", "telephony/phones", "stations", "locations", "authorization/roles",
		"authorization/divisions", "presencedefinitions", "notifications/channels", "scripts",
		"integrations", "webchat/deployments", "journey/sessions", "speechandtextanalytics/topics",
	}
	shapes = []struct {
		suffix  string
		methods []string
		weights []float64
	}{
		{"", []string{"GET", "POST"}, []float64{0.8, 0.2}},
		{"/{id}", []string{"GET", "PUT", "PATCH", "DELETE"}, []float64{0.75, 0.1, 0.1, 0.05}},
		{"/query", []string{"POST"}, []float64{1}},
		{"/{id}/members", []string{"GET", "POST", "DELETE"}, []float64{0.7, 0.2, 0.1}},
		{"/search", []string{"GET", "POST"}, []float64{0.3, 0.7}},
		{"/{id}/details", []string{"GET", "HEAD"}, []float64{0.9, 0.1}},
		{"/{id}/attributes", []string{"GET", "PATCH"}, []float64{0.6, 0.4}},
		{"/bulk", []string{"POST", "DELETE"}, []float64{0.8, 0.2}},
		{"/{id}/history", []string{"GET"}, []float64{1}},
		{"/summary", []string{"GET", "HEAD"}, []float64{0.95, 0.05}},
	}
	maxTemplates = len(resources) * len(shapes)
)

// makeTemplates returns n template URIs, without a leading slash, as the
// contract writes them (api/v2/users/{id}). The most common shapes come
// first, so that a small universe is still realistic.
func makeTemplates(n int) []Template {
	var out []Template
	for _, s := range shapes {
		for _, r := range resources {
			if len(out) == n {
				return out
			}
			out = append(out, Template{
				URI:     "api/v2/" + r + s.suffix,
				Methods: s.methods,
				pick:    newAlias(s.weights),
			})
		}
	}
	return out
}

// hourWeight is the expected traffic of the hour starting at t, relative to
// the others: a day/night cycle peaking in the afternoon UTC, quiet weekends,
// and growth of a fifth over the whole span.
func hourWeight(t time.Time, progress float64) float64 {
	h := float64(t.Hour())
	day := 0.5 - 0.5*math.Cos(2*math.Pi*(h-3)/24) // 0 at 03:00, 1 at 15:00
	w := 0.08 + math.Pow(day, 1.5)
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		w *= 0.3
	}
	return w * (1 + 0.2*progress)
}

// burst is a client running into its rate limit within an hour: most of its
// requests in [from, to) milliseconds answer 429.
type burst struct {
	client   int
	from, to uint32
}

// WriteTo writes every event to w, in time order, one JSON object a line,
// and returns the bytes written.
func (g *Generator) WriteTo(w io.Writer) (int64, error) {
	cfg := g.cfg
	rng := rand.NewPCG(cfg.Seed, 0x6576656e7473) // "events"
	r := rand.New(rng)
	hours := cfg.Days * 24

	// Hourly counts: cumulative rounding of the expected counts gives
	// exactly Events in all.
	weights := make([]float64, hours)
	var total float64
	for h := range hours {
		t := g.start.Add(time.Duration(h) * time.Hour)
		weights[h] = hourWeight(t, float64(h)/float64(hours)) * (0.9 + 0.2*r.Float64())
		total += weights[h]
	}

	var (
		written int64
		buf     = make([]byte, 0, 1<<20+4096)
		offsets []uint32
		cum     float64
		done    int64
		bursts  []burst
	)
	flush := func() error {
		n, err := w.Write(buf)
		written += int64(n)
		buf = buf[:0]
		return err
	}
	for h := range hours {
		cum += weights[h]
		upto := int64(math.Round(float64(cfg.Events) * cum / total))
		if h == hours-1 {
			upto = cfg.Events
		}
		n := int(upto - done)
		done = upto
		if n <= 0 {
			continue
		}
		hourStart := g.start.Add(time.Duration(h) * time.Hour)
		prefix := hourStart.Format(`{"timestamp":"2006-01-02T15:`)

		// A few busy clients hit their limit for some minutes this hour.
		bursts = bursts[:0]
		for range r.IntN(4) {
			from := uint32(r.IntN(3_600_000))
			bursts = append(bursts, burst{
				client: g.clients.sample(rng.Uint64()),
				from:   from,
				to:     from + uint32(60_000+r.IntN(540_000)),
			})
		}

		offsets = offsets[:0]
		for range n {
			offsets = append(offsets, uint32(rng.Uint64()%3_600_000))
		}
		slices.Sort(offsets)

		for _, ms := range offsets {
			c := g.clients.sample(rng.Uint64())
			client := &g.u.Clients[c]
			tmpl := client.templates[client.pick.sample(rng.Uint64())]
			t := &g.u.Templates[tmpl]
			method := t.Methods[t.pick.sample(rng.Uint64())]
			st := g.status[method]
			code := st.pick.sample(rng.Uint64())
			statusJSON := st.json[code]
			for _, b := range bursts {
				if b.client == c && ms >= b.from && ms < b.to && rng.Uint64()%10 < 7 {
					statusJSON = status429
				}
			}
			noUser := rng.Uint64()%10 == 0 // a tenth of the requests carry no user

			buf = append(buf, prefix...)
			buf = appendMinSecMillis(buf, ms)
			buf = append(buf, g.orgJSON[c]...)
			buf = append(buf, g.clientJSON[c]...)
			if !noUser {
				users := g.orgUser[client.org]
				buf = append(buf, g.userJSON[users[g.users[client.org].sample(rng.Uint64())]]...)
			}
			buf = append(buf, g.tmplJSON[tmpl]...)
			buf = append(buf, g.methodJSON[method]...)
			buf = append(buf, statusJSON...)
			if len(buf) >= 1<<20 {
				if err := flush(); err != nil {
					return written, fmt.Errorf("write events: %w", err)
				}
			}
		}
	}
	if err := flush(); err != nil {
		return written, fmt.Errorf("write events: %w", err)
	}
	return written, nil
}

var status429 = []byte(`","status":429}` + "\n")

// appendMinSecMillis appends "MM:SS.mmmZ\"" for ms milliseconds into the hour.
func appendMinSecMillis(b []byte, ms uint32) []byte {
	min, sec, milli := ms/60_000, ms/1000%60, ms%1000
	return append(b,
		byte('0'+min/10), byte('0'+min%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.',
		byte('0'+milli/100), byte('0'+milli/10%10), byte('0'+milli%10), 'Z', '"')
}
