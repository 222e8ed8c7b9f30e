package apiusage_test

import (
	"slices"
	"testing"

	"github.com/apiusage/apiusage"
)

func TestClientHas(t *testing.T) {
	c := apiusage.Client{Permissions: []apiusage.Permission{apiusage.PermUsageClient, apiusage.PermClientView}}
	tests := []struct {
		p    apiusage.Permission
		want bool
	}{
		{apiusage.PermUsageClient, true},
		{apiusage.PermClientView, true},
		{apiusage.PermUsageOrganization, false},
		{"usage:client", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := c.Has(tt.p); got != tt.want {
			t.Errorf("Has(%q) = %v, want %v", tt.p, got, tt.want)
		}
	}
}

func TestPlatformPermissionsIncludeOrganizationPermissions(t *testing.T) {
	for _, p := range apiusage.OrganizationPermissions {
		if !slices.Contains(apiusage.PlatformPermissions, p) {
			t.Errorf("PlatformPermissions lacks %q", p)
		}
	}
	for _, p := range []apiusage.Permission{apiusage.PermOrganizationAdd, apiusage.PermOrganizationView, apiusage.PermEventAddAny} {
		if slices.Contains(apiusage.OrganizationPermissions, p) {
			t.Errorf("OrganizationPermissions holds the platform-only %q", p)
		}
		if !slices.Contains(apiusage.PlatformPermissions, p) {
			t.Errorf("PlatformPermissions lacks %q", p)
		}
	}
}
