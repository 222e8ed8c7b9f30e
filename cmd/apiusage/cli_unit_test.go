package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/client"
	"github.com/spf13/pflag"
)

func TestParseLast(t *testing.T) {
	good := []struct {
		in   string
		want time.Duration
	}{
		{"90m", 90 * time.Minute},
		{"12h", 12 * time.Hour},
		{"7d", 7 * 24 * time.Hour},
		{"2w", 14 * 24 * time.Hour},
	}
	for _, tt := range good {
		if got, err := parseLast(tt.in); err != nil || got != tt.want {
			t.Errorf("parseLast(%q) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "d", "7", "0d", "-1d", "7y", "1.5d", "7 d", "99999999999w"} {
		if got, err := parseLast(in); err == nil {
			t.Errorf("parseLast(%q) = %s, want an error", in, got)
		}
	}
}

func TestIntervalFlags(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 30, 45, 123, time.FixedZone("", 3600))
	tests := []struct {
		name string
		f    intervalFlags
		want string
	}{
		{"last", intervalFlags{last: "2d"}, "2026-03-08T11:30:45Z/2026-03-10T11:30:45Z"},
		{"interval", intervalFlags{interval: "2026-01/2026-02"}, "2026-01/2026-02"},
	}
	for _, tt := range tests {
		got, err := tt.f.value(now)
		if err != nil || got != tt.want {
			t.Errorf("%s: value() = %q, %v; want %q", tt.name, got, err, tt.want)
		}
		if _, err := apiusage.ParseInterval(got); err != nil {
			t.Errorf("%s: %q does not parse: %v", tt.name, got, err)
		}
	}
	var none intervalFlags
	_, err := none.value(now)
	var u usageError
	if !errors.As(err, &u) {
		t.Errorf("value() without flags = %v, want a usage error", err)
	}
}

func TestConfigDir(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "darwin" {
		t.Skip("the XDG layout is that of Linux and the BSDs")
	}
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	tests := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr bool
	}{
		{"xdg", map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/x", false},
		{"home", map[string]string{"HOME": "/h"}, "/h/.config", false},
		{"relative xdg", map[string]string{"XDG_CONFIG_HOME": "x"}, "", true},
		{"nothing", nil, "", true},
	}
	for _, tt := range tests {
		got, err := configDir(env(tt.env))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: configDir = %q, %v; want %q (error %v)", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestProfilesSaveIsPrivate(t *testing.T) {
	dir := t.TempDir()
	getenv := func(k string) string {
		if k == "XDG_CONFIG_HOME" {
			return dir
		}
		return ""
	}
	pf, err := loadProfiles(getenv)
	if err != nil {
		t.Fatal(err)
	}
	if len(pf.Profiles) != 0 {
		t.Fatalf("profiles of an empty directory = %v, want none", pf.Profiles)
	}
	pf.Profiles["a"] = profile{URL: "http://x", ClientID: "id", ClientSecret: "s3cret"}
	if err := pf.save(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "apiusage", "profiles.json")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if got := info.Mode().Perm(); got != 0o600 {
			t.Errorf("profiles.json mode = %v, want 0600", got)
		}
		dinfo, err := os.Stat(filepath.Dir(path))
		if err != nil {
			t.Fatal(err)
		}
		if got := dinfo.Mode().Perm(); got != 0o700 {
			t.Errorf("config directory mode = %v, want 0700", got)
		}
	}
	back, err := loadProfiles(getenv)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Profiles["a"]; got != pf.Profiles["a"] {
		t.Errorf("profile read back = %+v, want %+v", got, pf.Profiles["a"])
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("config directory holds %d files, want only profiles.json (no temporary left)", len(entries))
	}
}

func TestResolvePrecedence(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"XDG_CONFIG_HOME": dir}
	getenv := func(k string) string { return env[k] }
	pf, _ := loadProfiles(getenv)
	pf.Profiles["default"] = profile{URL: "http://profile", ClientID: "pid", ClientSecret: "psecret"}
	pf.Profiles["other"] = profile{URL: "http://other", ClientID: "oid", ClientSecret: "osecret"}
	if err := pf.save(); err != nil {
		t.Fatal(err)
	}
	c := &cli{getenv: getenv}

	got, err := c.resolve()
	if err != nil || got.url != "http://profile" || got.clientID != "pid" || got.clientSecret != "psecret" {
		t.Errorf("profile only: %+v, %v; want the default profile", got, err)
	}
	env[envURL], env[envClientID] = "http://env", "eid"
	got, _ = c.resolve()
	if got.url != "http://env" || got.clientID != "eid" || got.clientSecret != "psecret" {
		t.Errorf("env over profile: %+v, want url and id from the environment, secret from the profile", got)
	}
	c.conn.url = "http://flag"
	got, _ = c.resolve()
	if got.url != "http://flag" || got.clientID != "eid" {
		t.Errorf("flag over env: %+v, want url from the flag", got)
	}
	c.conn = connFlags{profile: "other"}
	delete(env, envURL)
	delete(env, envClientID)
	got, _ = c.resolve()
	if got.url != "http://other" || got.clientID != "oid" {
		t.Errorf("--profile other: %+v, want the other profile", got)
	}
	c.conn = connFlags{}
	env[envProfile] = "missing"
	_, err = c.resolve()
	var u usageError
	if !errors.As(err, &u) {
		t.Errorf("a missing named profile: %v, want a usage error", err)
	}
}

func TestReadEvents(t *testing.T) {
	const ok = `{"timestamp":"2026-01-01T10:00:00Z","organizationId":"o","clientId":"c","templateUri":"api/v2/x","httpMethod":"get","status":200}`
	tests := []struct {
		name, format, input string
		// want is, per record, the line and whether it is valid.
		want []recordWant
		// fatal is true when reading ends with an error that is not an
		// invalid event.
		fatal bool
	}{
		{
			name: "ndjson", format: formatNDJSON,
			input: ok + "\n\n" + `{"timestamp":"2026-01-01T10:00:00Z"}` + "\n" + "not json\n" + ok + "\n",
			want:  []recordWant{{1, true}, {3, false}, {4, false}, {5, true}},
		},
		{
			name: "json array", format: formatJSON,
			input: "[\n  " + ok + ",\n  {\"status\": \"x\"},\n\n  " + ok + "\n]\n",
			want:  []recordWant{{2, true}, {3, false}, {5, true}},
		},
		{
			name: "json array cut short", format: formatJSON,
			input: "[\n" + ok + ",\n{\"status\": ",
			want:  []recordWant{{2, true}},
			fatal: true,
		},
		{
			name: "not an array", format: formatJSON, input: "{}", fatal: true,
		},
		{
			name: "csv", format: formatCSV,
			input: "timestamp,organizationId,clientId,templateUri,httpMethod,status\n" +
				"2026-01-01T10:00:00Z,o,c,api/v2/x,GET,200\n" +
				"2026-01-01T10:00:00Z,o,c,api/v2/x,GET,abc\n" +
				"2026-01-01T10:00:00Z,o,c\n" +
				"\"2026-01-01T10:00:00Z\",o,c,\"api/v2/{id}\",POST,503\n",
			want: []recordWant{{2, true}, {3, false}, {4, false}, {5, true}},
		},
		{
			name: "csv unknown column", format: formatCSV,
			input: "timestamp,org\n", fatal: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []recordWant
			fatal := false
			for rec := range readEvents(tt.format, strings.NewReader(tt.input)) {
				var bad *invalidEvent
				if rec.err != nil && !errors.As(rec.err, &bad) {
					fatal = true
					continue
				}
				got = append(got, recordWant{rec.line, rec.err == nil})
			}
			if fatal != tt.fatal || !equalRecords(got, tt.want) {
				t.Errorf("records = %v (fatal %v), want %v (fatal %v)", got, fatal, tt.want, tt.fatal)
			}
		})
	}
}

type recordWant struct {
	line  int
	valid bool
}

func equalRecords(a, b []recordWant) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func FuzzReadEvents(f *testing.F) {
	f.Add(`{"timestamp":"2026-01-01T10:00:00Z","organizationId":"o","clientId":"c","templateUri":"u","httpMethod":"GET","status":200}`)
	f.Add("[{\"status\": 200},\n{}]")
	f.Add("timestamp,status\n2026-01-01T00:00:00Z,200\n\"unterminated")
	f.Add("\xEF\xBB\xBF[]")
	f.Fuzz(func(t *testing.T, input string) {
		for _, format := range []string{formatNDJSON, formatJSON, formatCSV} {
			last := 0
			for rec := range readEvents(format, strings.NewReader(input)) {
				if rec.err == nil {
					if err := rec.event.Validate(); err != nil {
						t.Fatalf("%s: a valid record fails Validate: %v", format, err)
					}
				}
				if rec.line < 0 || (rec.err == nil && rec.line < last) {
					t.Fatalf("%s: line %d after %d", format, rec.line, last)
				}
				if rec.err == nil {
					last = rec.line
				}
			}
		}
	})
}

func TestSniffFormat(t *testing.T) {
	tests := []struct{ name, content, want string }{
		{"events.csv", "{}", formatCSV},
		{"events.json", "  \n[{}]", formatJSON},
		{"events.json", "\xEF\xBB\xBF[{}]", formatJSON},
		{"events.ndjson", "{}\n{}", formatNDJSON},
		{"events", "", formatNDJSON},
	}
	for _, tt := range tests {
		br := bufio.NewReader(strings.NewReader(tt.content))
		if got := sniffFormat(tt.name, br); got != tt.want {
			t.Errorf("sniffFormat(%q, %q) = %q, want %q", tt.name, tt.content, got, tt.want)
		}
	}
}

func TestRowWriters(t *testing.T) {
	q, _, err := apiusage.OrgQuery{
		Interval:    "2026-01-01/2026-01-03",
		Granularity: "day",
		GroupBy:     []apiusage.Dimension{"oauthclientid"},
		Metrics:     []apiusage.Metric{"requests", "status429"},
	}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	rows := []client.UsageRow{
		{Date: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ClientID: "c1", ClientName: "Billing, \"prod\"", Requests: 1200, Status429: 3},
		{Date: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), ClientID: "c2", Requests: 7},
	}
	tests := []struct{ format, want string }{
		{outputTable, "" +
			"DATE        CLIENT ID  CLIENT NAME      REQUESTS  429\n" +
			"2026-01-01  c1         Billing, \"prod\"      1200    3\n" +
			"2026-01-02  c2         -                       7    0\n"},
		{outputCSV, "" +
			"date,clientId,clientName,requests,status429\n" +
			"2026-01-01T00:00:00Z,c1,\"Billing, \"\"prod\"\"\",1200,3\n" +
			"2026-01-02T00:00:00Z,c2,,7,0\n"},
		{outputJSON, "" +
			"{\n  \"results\": [\n" +
			"    {\"date\": \"2026-01-01T00:00:00Z\", \"clientId\": \"c1\", \"clientName\": \"Billing, \\\"prod\\\"\", \"requests\": 1200, \"status429\": 3},\n" +
			"    {\"date\": \"2026-01-02T00:00:00Z\", \"clientId\": \"c2\", \"clientName\": \"\", \"requests\": 7, \"status429\": 0}\n" +
			"  ],\n  \"queryStatus\": \"Complete\"\n}\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		w := newRowWriter(tt.format, &b, queryColumns(q))
		for _, r := range rows {
			if err := w.write(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.close(); err != nil {
			t.Fatal(err)
		}
		if got := b.String(); got != tt.want {
			t.Errorf("%s output:\n%s\nwant:\n%s", tt.format, got, tt.want)
		}
	}
	// No rows: still a heading, or a valid empty result.
	for format, want := range map[string]string{
		outputCSV:  "date,clientId,clientName,requests,status429\n",
		outputJSON: "{\n  \"results\": [],\n  \"queryStatus\": \"Complete\"\n}\n",
	} {
		var b bytes.Buffer
		w := newRowWriter(format, &b, queryColumns(q))
		if err := w.close(); err != nil {
			t.Fatal(err)
		}
		if got := b.String(); got != want {
			t.Errorf("%s output without rows = %q, want %q", format, got, want)
		}
	}
}

func TestProgressLine(t *testing.T) {
	tests := []struct {
		done, total int64
		events      int
		elapsed     time.Duration
		want        string
	}{
		{0, 100, 0, 0, "f [>                       ]   0% 0 events 0 events/s"},
		{50, 100, 500, 2 * time.Second, "f [============>           ]  50% 500 events 250 events/s"},
		{100, 100, 1000, time.Second, "f [========================] 100% 1000 events 1000 events/s"},
	}
	for _, tt := range tests {
		if got := progressLine("f", tt.done, tt.total, tt.events, tt.elapsed); got != tt.want {
			t.Errorf("progressLine(%d/%d) = %q, want %q", tt.done, tt.total, got, tt.want)
		}
	}
}

func TestSpinnerLine(t *testing.T) {
	if got, want := spinnerLine(11, 1500*time.Millisecond), "⠙ waiting for the result 1.5s"; got != want {
		t.Errorf("spinnerLine = %q, want %q", got, want)
	}
}

// TestEveryServeFlagHasItsVariable checks that each flag of serve can be set
// from the environment, by the variable its help names.
func TestEveryServeFlagHasItsVariable(t *testing.T) {
	cmd := serveCommand(func(string) string { return "" }, &bytes.Buffer{}, &bytes.Buffer{})
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" {
			return
		}
		v, ok := envFlags[f.Name]
		if !ok {
			t.Errorf("--%s has no environment variable", f.Name)
			return
		}
		if !strings.Contains(f.Usage, "["+v+"]") {
			t.Errorf("--%s: its help %q does not name %s", f.Name, f.Usage, v)
		}
	})
}

// TestLowerGC checks that lowerGC lowers the GC percentage only where it is
// higher, never turns off a collector that was off into one that runs, and
// gives the process its setting back.
func TestLowerGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	for _, tc := range []struct{ before, during int }{
		{150, recoveryGCPercent},
		{recoveryGCPercent, recoveryGCPercent},
		{20, 20},
		{-1, -1},
	} {
		debug.SetGCPercent(tc.before)
		restore := lowerGC(recoveryGCPercent)
		during := debug.SetGCPercent(tc.during)
		restore()
		after := debug.SetGCPercent(100)
		if during != tc.during || after != tc.before {
			t.Errorf("from %d: %d while lowered and %d after, want %d and %d", tc.before, during, after, tc.during, tc.before)
		}
	}
}
