package apiusage

import (
	"errors"
	"fmt"
	"time"
)

// Event is one API request to record.
type Event struct {
	// ID, when set, makes the event idempotent: an event whose ID was seen
	// before in the same organization (within the deduplication window) is
	// not counted again.
	ID             string    `json:"id,omitempty"`
	Time           time.Time `json:"timestamp"`
	OrganizationID string    `json:"organizationId"`
	ClientID       string    `json:"clientId"`
	// ClientName names the client when it is not registered here.
	ClientName  string `json:"clientName,omitempty"`
	UserID      string `json:"userId,omitempty"`
	TemplateURI string `json:"templateUri"`
	Method      string `json:"httpMethod"`
	Status      int    `json:"status"`
}

// Limits on the fields of an event. They bound memory per distinct value and
// keep raw paths (which would leak identifiers) from posing as templates.
const (
	MaxIDLength    = 256
	MaxFieldLength = 512
)

// Validate reports every problem of e, each as an *Error with CodeBadRequest
// naming the field.
func (e Event) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, Errorf(CodeBadRequest, "%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if e.Time.IsZero() {
		bad("timestamp", "is required")
	} else if y := e.Time.UTC().Year(); y < 1970 || y > 9999 {
		bad("timestamp", "out of range")
	}
	required := []struct{ name, value string }{
		{"organizationId", e.OrganizationID},
		{"clientId", e.ClientID},
		{"templateUri", e.TemplateURI},
		{"httpMethod", e.Method},
	}
	for _, f := range required {
		if f.value == "" {
			bad(f.name, "is required")
		}
	}
	lengths := []struct {
		name, value string
		max         int
	}{
		{"id", e.ID, MaxIDLength},
		{"organizationId", e.OrganizationID, MaxFieldLength},
		{"clientId", e.ClientID, MaxFieldLength},
		{"clientName", e.ClientName, MaxFieldLength},
		{"userId", e.UserID, MaxFieldLength},
		{"templateUri", e.TemplateURI, MaxFieldLength},
	}
	for _, f := range lengths {
		if len(f.value) > f.max {
			bad(f.name, "longer than %d bytes", f.max)
		}
	}
	if e.Method != "" {
		if _, ok := canonical(HTTPMethods, e.Method); !ok {
			bad("httpMethod", "unknown value %q", e.Method)
		}
	}
	if e.Status < 100 || e.Status > 599 {
		bad("status", "must be an HTTP status code from 100 to 599, got %d", e.Status)
	}
	return errors.Join(errs...)
}

// Normalize returns e with its time in UTC and its method in upper case.
// It assumes e is valid.
func (e Event) Normalize() Event {
	e.Time = e.Time.UTC()
	if m, ok := canonical(HTTPMethods, e.Method); ok {
		e.Method = m
	}
	return e
}
