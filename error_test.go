package apiusage_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/apiusage/apiusage"
)

func TestErrorCodeAndMessage(t *testing.T) {
	bad := apiusage.Errorf(apiusage.CodeBadRequest, "interval is required")
	missing := apiusage.Errorf(apiusage.CodeBadRequest, "metrics: unknown value %q", "X")
	plain := errors.New("disk on fire")
	tests := []struct {
		name     string
		err      error
		wantCode string
		wantMsg  string
	}{
		{"nil", nil, "", ""},
		{"domain error", bad, apiusage.CodeBadRequest, "interval is required"},
		{"wrapped domain error", errors.Join(errors.New("context"), nil, wrap(bad)), apiusage.CodeBadRequest, "interval is required"},
		{"not found", wrap(apiusage.ErrNotFound), apiusage.CodeNotFound, "not found"},
		{"plain error is internal and hidden", plain, apiusage.CodeInternal, "internal server error"},
		{"wrapped plain error", wrap(plain), apiusage.CodeInternal, "internal server error"},
		{"joined domain errors", errors.Join(bad, missing), apiusage.CodeBadRequest, `interval is required; metrics: unknown value "X"`},
		{"nested joins", errors.Join(bad, wrap(errors.Join(missing, apiusage.ErrNotFound))), apiusage.CodeBadRequest, `interval is required; metrics: unknown value "X"; not found`},
		{"plain error joined with a domain error hides the plain one", errors.Join(plain, missing), apiusage.CodeBadRequest, `metrics: unknown value "X"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := apiusage.ErrorCode(tt.err); got != tt.wantCode {
				t.Errorf("ErrorCode(%v) = %q, want %q", tt.err, got, tt.wantCode)
			}
			if got := apiusage.ErrorMessage(tt.err); got != tt.wantMsg {
				t.Errorf("ErrorMessage(%v) = %q, want %q", tt.err, got, tt.wantMsg)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	e := apiusage.Errorf(apiusage.CodeConflict, "client %q exists", "abc")
	if got, want := e.Error(), `conflict: client "abc" exists`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// wrap adds context the way the codebase does.
func wrap(err error) error { return fmt.Errorf("context: %w", err) }
