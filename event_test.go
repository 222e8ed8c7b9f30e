package apiusage_test

import (
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// validEvent returns an event that passes Validate.
func validEvent() apiusage.Event {
	return apiusage.Event{
		ID:             "evt-1",
		Time:           utc(2026, 11, 25, 10, 15, 2, 123000000),
		OrganizationID: "org-1",
		ClientID:       "client-1",
		ClientName:     "Client One",
		UserID:         "user-1",
		TemplateURI:    "api/v2/users/{userId}",
		Method:         "GET",
		Status:         200,
	}
}

func TestEventValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*apiusage.Event)
		parts  []string // empty: valid
	}{
		{"valid", func(*apiusage.Event) {}, nil},
		{"optional fields may be empty", func(e *apiusage.Event) { e.ID, e.ClientName, e.UserID = "", "", "" }, nil},
		{"lower-case method", func(e *apiusage.Event) { e.Method = "patch" }, nil},
		{"status 100", func(e *apiusage.Event) { e.Status = 100 }, nil},
		{"status 599", func(e *apiusage.Event) { e.Status = 599 }, nil},
		{"the epoch", func(e *apiusage.Event) { e.Time = time.Unix(0, 0) }, nil},
		{"fields at their limits", func(e *apiusage.Event) {
			e.ID = strings.Repeat("i", apiusage.MaxIDLength)
			e.TemplateURI = strings.Repeat("t", apiusage.MaxFieldLength)
		}, nil},
		{"no time", func(e *apiusage.Event) { e.Time = time.Time{} }, []string{"timestamp: is required"}},
		{"before 1970", func(e *apiusage.Event) { e.Time = utc(1969, 12, 31, 23, 0, 0, 0) }, []string{"timestamp: out of range"}},
		{"no organization", func(e *apiusage.Event) { e.OrganizationID = "" }, []string{"organizationId: is required"}},
		{"no client", func(e *apiusage.Event) { e.ClientID = "" }, []string{"clientId: is required"}},
		{"no template", func(e *apiusage.Event) { e.TemplateURI = "" }, []string{"templateUri: is required"}},
		{"no method", func(e *apiusage.Event) { e.Method = "" }, []string{"httpMethod: is required"}},
		{"unknown method", func(e *apiusage.Event) { e.Method = "FETCH" }, []string{"httpMethod", `"FETCH"`}},
		{"status 99", func(e *apiusage.Event) { e.Status = 99 }, []string{"status", "got 99"}},
		{"status 600", func(e *apiusage.Event) { e.Status = 600 }, []string{"status", "got 600"}},
		{"no status", func(e *apiusage.Event) { e.Status = 0 }, []string{"status", "got 0"}},
		{"id too long", func(e *apiusage.Event) { e.ID = strings.Repeat("i", apiusage.MaxIDLength+1) }, []string{"id: longer than 256"}},
		{"client name too long", func(e *apiusage.Event) { e.ClientName = strings.Repeat("n", apiusage.MaxFieldLength+1) }, []string{"clientName: longer than 512"}},
		{"user too long", func(e *apiusage.Event) { e.UserID = strings.Repeat("u", apiusage.MaxFieldLength+1) }, []string{"userId: longer than 512"}},
		{"template too long", func(e *apiusage.Event) { e.TemplateURI = strings.Repeat("t", apiusage.MaxFieldLength+1) }, []string{"templateUri: longer than 512"}},
		{"every problem at once", func(e *apiusage.Event) {
			*e = apiusage.Event{Method: "BREW", Status: 700, OrganizationID: strings.Repeat("o", apiusage.MaxFieldLength+1)}
		}, []string{"timestamp: is required", "organizationId: longer than", "clientId: is required", "templateUri: is required", `httpMethod: unknown value "BREW"`, "got 700"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validEvent()
			tt.change(&e)
			err := e.Validate()
			if len(tt.parts) == 0 {
				if err != nil {
					t.Fatalf("Validate(%+v) = %v, want nil", e, err)
				}
				return
			}
			wantBadRequest(t, err, tt.parts...)
		})
	}
}

func TestEventNormalize(t *testing.T) {
	e := validEvent()
	e.Time = time.Date(2026, 11, 25, 12, 0, 0, 0, time.FixedZone("", 2*3600))
	e.Method = "delete"
	got := e.Normalize()
	if got.Time.Location() != time.UTC || !got.Time.Equal(utc(2026, 11, 25, 10, 0, 0, 0)) {
		t.Errorf("Normalize time = %v, want 2026-11-25T10:00:00Z in UTC", got.Time)
	}
	if got.Method != "DELETE" {
		t.Errorf("Normalize method = %q, want %q", got.Method, "DELETE")
	}
	want := e
	want.Time, want.Method = got.Time, got.Method
	if got != want {
		t.Errorf("Normalize changed other fields: got %+v, want %+v", got, want)
	}
}
