package workload

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// generate writes the events of cfg and returns them.
func generate(tb testing.TB, cfg Config) (*Generator, []byte) {
	tb.Helper()
	g, err := New(cfg)
	if err != nil {
		tb.Fatalf("New(%+v): %v", cfg, err)
	}
	var buf bytes.Buffer
	n, err := g.WriteTo(&buf)
	if err != nil {
		tb.Fatalf("WriteTo: %v", err)
	}
	if n != int64(buf.Len()) {
		tb.Fatalf("WriteTo returned %d bytes, wrote %d", n, buf.Len())
	}
	return g, buf.Bytes()
}

// decode parses every line with encoding/json into the domain's Event, the
// way the server's ingest contract reads them, and validates each.
func decode(tb testing.TB, data []byte) []apiusage.Event {
	tb.Helper()
	var out []apiusage.Event
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		var e apiusage.Event
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			tb.Fatalf("line %d %q: %v", line, sc.Text(), err)
		}
		if err := e.Validate(); err != nil {
			tb.Fatalf("line %d %q: invalid event: %v", line, sc.Text(), err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestWriteToIsDeterministic(t *testing.T) {
	cfg := Config{Seed: 7, Events: 20_000, Days: 3, Clients: 100, Users: 500}
	_, a := generate(t, cfg)
	_, b := generate(t, cfg)
	if !bytes.Equal(a, b) {
		t.Fatalf("two runs with seed 7 differ: sha256 %x and %x", sha256.Sum256(a), sha256.Sum256(b))
	}
	cfg.Seed = 8
	_, c := generate(t, cfg)
	if bytes.Equal(a, c) {
		t.Fatal("seeds 7 and 8 gave the same bytes")
	}
}

func TestUniverseDoesNotDependOnEventCount(t *testing.T) {
	small, _ := New(Config{Seed: 3, Events: 10})
	large, _ := New(Config{Seed: 3, Events: 1_000_000})
	for i := range small.Universe().Clients {
		if got, want := small.Universe().Clients[i].ID, large.Universe().Clients[i].ID; got != want {
			t.Fatalf("client %d: id %q with 10 events, %q with a million", i, got, want)
		}
	}
}

func TestWriteToExactCount(t *testing.T) {
	for _, n := range []int64{1, 7, 1000, 12_345} {
		_, data := generate(t, Config{Seed: 1, Events: n, Days: 2, Clients: 50, Users: 100})
		if got := int64(bytes.Count(data, []byte("\n"))); got != n {
			t.Errorf("Events %d: wrote %d lines", n, got)
		}
	}
}

// TestShape checks the statistics the benchmark relies on: the universe's
// sizes and memberships, time order and range, the share of requests
// without a user, the skew, the day/night cycle and the 429 bursts.
func TestShape(t *testing.T) {
	cfg := Config{Seed: 42, Events: 100_000, Days: 14}
	g, data := generate(t, cfg)
	events := decode(t, data)
	u := g.Universe()
	if len(u.Organizations) != DefaultOrganizations || len(u.Clients) != DefaultClients ||
		len(u.Users) != DefaultUsers || len(u.Templates) != DefaultTemplates {
		t.Fatalf("universe sizes %d/%d/%d/%d, want %d/%d/%d/%d",
			len(u.Organizations), len(u.Clients), len(u.Users), len(u.Templates),
			DefaultOrganizations, DefaultClients, DefaultUsers, DefaultTemplates)
	}

	clientOrg := map[string]string{}
	clientName := map[string]string{}
	names := map[string]bool{}
	for _, c := range u.Clients {
		clientOrg[c.ID], clientName[c.ID] = c.OrganizationID, c.Name
		if names[c.Name] {
			t.Errorf("client name %q used twice", c.Name)
		}
		names[c.Name] = true
	}
	userOrg := map[string]string{}
	for _, us := range u.Users {
		userOrg[us.ID] = u.Organizations[us.org].ID
	}
	tmpls := map[string]bool{}
	for _, tm := range u.Templates {
		if strings.HasPrefix(tm.URI, "/") || tmpls[tm.URI] {
			t.Errorf("template %q starts with a slash or repeats", tm.URI)
		}
		tmpls[tm.URI] = true
	}

	start, end := cfg.End, cfg.End
	if start.IsZero() {
		start, end = DefaultEnd, DefaultEnd
	}
	start = start.AddDate(0, 0, -cfg.Days)
	var (
		prev                 time.Time
		noUser, s429         int
		perClient            = map[string]int{}
		dayHours, nightHours int // 12:00-18:00 versus 00:00-06:00 UTC
		methods              = map[string]bool{}
	)
	for i, e := range events {
		if e.Time.Before(prev) {
			t.Fatalf("event %d at %s comes after one at %s", i, e.Time, prev)
		}
		prev = e.Time
		if e.Time.Before(start) || !e.Time.Before(end) {
			t.Fatalf("event %d at %s, outside [%s, %s)", i, e.Time, start, end)
		}
		if e.Time.Nanosecond()%int(time.Millisecond) != 0 {
			t.Fatalf("event %d at %s has more than millisecond precision", i, e.Time)
		}
		if got, want := e.OrganizationID, clientOrg[e.ClientID]; got != want {
			t.Fatalf("event %d: client %s in organization %q, want %q", i, e.ClientID, got, want)
		}
		if got, want := e.ClientName, clientName[e.ClientID]; got != want {
			t.Fatalf("event %d: client name %q, want %q", i, got, want)
		}
		if e.UserID == "" {
			noUser++
		} else if got, want := userOrg[e.UserID], e.OrganizationID; got != want {
			t.Fatalf("event %d: user %s of organization %q in organization %q", i, e.UserID, got, want)
		}
		if !tmpls[e.TemplateURI] {
			t.Fatalf("event %d: unknown template %q", i, e.TemplateURI)
		}
		methods[e.Method] = true
		if e.Status == 429 {
			s429++
		}
		perClient[e.ClientID]++
		switch h := e.Time.Hour(); {
		case h >= 12 && h < 18:
			dayHours++
		case h < 6:
			nightHours++
		}
	}
	n := float64(len(events))
	if got := float64(noUser) / n; math.Abs(got-0.1) > 0.01 {
		t.Errorf("share without a user %.4f, want 0.10 ± 0.01", got)
	}
	if len(methods) != len(Methods) {
		t.Errorf("methods used %v, want all of %v", methods, Methods)
	}
	// Skew: the busiest client carries far more than a uniform share, and
	// the busiest tenth of the clients carry most of the traffic.
	var counts []int
	for _, c := range perClient {
		counts = append(counts, c)
	}
	top := 0
	for _, c := range counts {
		top = max(top, c)
	}
	if got := float64(top) / n; got < 0.05 {
		t.Errorf("busiest client's share %.4f, want a Zipf head of at least 0.05", got)
	}
	if float64(dayHours) < 3*float64(nightHours) {
		t.Errorf("afternoon events %d, night events %d: want a day/night cycle of at least 3x", dayHours, nightHours)
	}
	// 429s: the background rate is about half a percent; bursts add more.
	if got := float64(s429) / n; got < 0.005 || got > 0.05 {
		t.Errorf("share of 429 %.4f, want from 0.005 to 0.05", got)
	}
}

// TestBurstsOf429 checks that 429s come in bursts: some client has minutes
// in which most of its requests are throttled, which the background rate
// alone would never give.
func TestBurstsOf429(t *testing.T) {
	_, data := generate(t, Config{Seed: 5, Events: 100_000, Days: 2})
	type minute struct {
		client string
		at     time.Time
	}
	total, throttled := map[minute]int{}, map[minute]int{}
	for _, e := range decode(t, data) {
		k := minute{e.ClientID, e.Time.Truncate(time.Minute)}
		total[k]++
		if e.Status == 429 {
			throttled[k]++
		}
	}
	bursty := 0
	for k, n := range total {
		if n >= 5 && float64(throttled[k]) >= 0.5*float64(n) {
			bursty++
		}
	}
	if bursty < 5 {
		t.Errorf("minutes in which a client got at least 5 requests, half of them 429: %d, want at least 5", bursty)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // a part of the error; empty for none
	}{
		{"defaults", Config{}, ""},
		{"negative events", Config{Events: -1}, "events must not be negative"},
		{"end not midnight", Config{End: DefaultEnd.Add(time.Hour)}, "end must be a UTC midnight"},
		{"too few clients", Config{Organizations: 5, Clients: 4}, "clients must be at least"},
		{"too many templates", Config{Templates: maxTemplates + 1}, "templates must be from 1"},
		{"before 1970", Config{End: time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC), Days: 5}, "1970"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestAliasMatchesWeights(t *testing.T) {
	weights := []float64{5, 1, 0, 3, 1}
	a := newAlias(weights)
	counts := make([]int, len(weights))
	var x uint64 = 1
	const draws = 200_000
	for range draws {
		x ^= x << 13 // xorshift: any decent uniform stream will do here
		x ^= x >> 7
		x ^= x << 17
		counts[a.sample(x)]++
	}
	for i, w := range weights {
		want := w / 10 * draws
		if math.Abs(float64(counts[i])-want) > 0.02*draws {
			t.Errorf("index %d drawn %d times, want about %.0f", i, counts[i], want)
		}
	}
}

func BenchmarkWriteTo(b *testing.B) {
	g, err := New(Config{Seed: 1, Events: 1_000_000})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ns/event")
}
