package postgres

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"testing"
)

// reference converts one event line the slow, obviously right way: through
// encoding/json, then COPY's text escapes.
func reference(line []byte) (string, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return "", false
	}
	var fields []string
	for i, col := range columns {
		raw, ok := m[col]
		if !ok {
			if i == 0 || i == 7 {
				return "", false
			}
			fields = append(fields, "")
			continue
		}
		if i == 7 {
			var n int
			if err := json.Unmarshal(raw, &n); err != nil || n < 100 || n > 599 || string(raw) != strconv.Itoa(n) {
				return "", false
			}
			fields = append(fields, strconv.Itoa(n))
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false
		}
		r := strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`)
		fields = append(fields, r.Replace(s))
	}
	return strings.Join(fields, "\t") + "\n", true
}

func TestAppendCopyRow(t *testing.T) {
	tests := []struct {
		name, line, want string // want "" for an error
	}{
		{"generator line",
			`{"timestamp":"2026-08-03T00:00:00.451Z","organizationId":"o1","clientId":"c1","clientName":"Acme Sync 1","userId":"u1","templateUri":"api/v2/users","httpMethod":"GET","status":200}`,
			"2026-08-03T00:00:00.451Z\to1\tc1\tAcme Sync 1\tu1\tapi/v2/users\tGET\t200\n"},
		{"optional fields missing, id skipped, spaces",
			` { "id" : "x1", "status" : 429 , "timestamp":"t", "extra": {"a":[1,2,{"b":null}]}, "more": -1.5e3 } `,
			"t\t\t\t\t\t\t\t429\n"},
		{"escapes", `{"timestamp":"t","clientName":"a\tb\\c\nd\"e\u00e9\ud83d\ude00\/","status":500}`,
			"t\t\t\ta\\tb\\\\c\\nd\"eé😀/\t\t\t\t500\n"},
		{"lone surrogate", `{"timestamp":"t","userId":"\ud800x","status":200}`, "t\t\t\t\t\ufffdx\t\t\t200\n"},
		{"no status", `{"timestamp":"t"}`, ""},
		{"status not a code", `{"timestamp":"t","status":42}`, ""},
		{"status a string", `{"timestamp":"t","status":"200"}`, ""},
		{"string field a number", `{"timestamp":"t","clientId":5,"status":200}`, ""},
		{"not an object", `[1]`, ""},
		{"trailing data", `{"timestamp":"t","status":200} x`, ""},
		{"unterminated", `{"timestamp":"t`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var vals [8][]byte
			got, err := appendCopyRow(nil, []byte(tt.line), &vals)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("appendCopyRow(%s) = %q, want an error", tt.line, got)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("appendCopyRow(%s) = %q, %v; want %q", tt.line, got, err, tt.want)
			}
		})
	}
}

func TestCopyReaderStreamsLines(t *testing.T) {
	var in bytes.Buffer
	var want strings.Builder
	for i := range 5000 {
		line := `{"timestamp":"2026-01-01T00:00:00.000Z","clientId":"c` + strconv.Itoa(i) + `","status":200}`
		in.WriteString(line + "\n\n")
		ref, _ := reference([]byte(line))
		want.WriteString(ref)
	}
	got, err := io.ReadAll(newCopyReader(&in))
	if err != nil || string(got) != want.String() {
		t.Fatalf("copyReader: %d bytes, %v; want %d bytes", len(got), err, want.Len())
	}
	_, err = io.ReadAll(newCopyReader(strings.NewReader("{\"timestamp\":\"t\",\"status\":200}\nnot json\n")))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("copyReader on a bad second line: %v, want an error naming line 2", err)
	}
}

// FuzzAppendCopyRow holds the hand-written converter to encoding/json: where
// encoding/json reads a valid event, the converter writes the same row.
func FuzzAppendCopyRow(f *testing.F) {
	for _, s := range []string{
		`{"timestamp":"2026-08-03T00:00:00.451Z","organizationId":"o","clientId":"c","clientName":"n","userId":"","templateUri":"api/v2/x","httpMethod":"GET","status":200}`,
		`{"status":404,"timestamp":"x","id":"i","clientName":"\u0000\t\\"}`,
		`{"timestamp":"\ud83d\ude00","status":503,"n":[true,false,null,{}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var vals [8][]byte
		got, err := appendCopyRow(nil, line, &vals)
		want, ok := reference(line)
		if !ok {
			return // invalid for encoding/json; the converter may reject or read it
		}
		if err != nil {
			t.Fatalf("appendCopyRow(%q): %v; encoding/json reads %q", line, err, want)
		}
		if string(got) != want {
			t.Fatalf("appendCopyRow(%q) = %q, want %q", line, got, want)
		}
	})
}
