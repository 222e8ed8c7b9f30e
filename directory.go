package apiusage

import (
	"context"
	"time"
)

// Permission names an action a client may take.
type Permission = string

// Permissions an organization's clients can hold.
const (
	PermClientView        Permission = "oauth:client:view"
	PermClientAdd         Permission = "oauth:client:add"
	PermClientEdit        Permission = "oauth:client:edit"
	PermClientDelete      Permission = "oauth:client:delete"
	PermUsageOrganization Permission = "usage:organization:view"
	PermUsageClient       Permission = "usage:client:view"
	PermUsageSimpleSearch Permission = "usage:simpleSearch:view"
	PermEventAdd          Permission = "usage:event:add"
)

// Permissions only clients of the platform organization can hold.
const (
	PermOrganizationAdd  Permission = "platform:organization:add"
	PermOrganizationView Permission = "platform:organization:view"
	PermEventAddAny      Permission = "usage:event:add:any"
)

// OrganizationPermissions lists every permission an organization's client can
// hold: what the first client of a new organization gets.
var OrganizationPermissions = []Permission{
	PermClientView, PermClientAdd, PermClientEdit, PermClientDelete,
	PermUsageOrganization, PermUsageClient, PermUsageSimpleSearch, PermEventAdd,
}

// PlatformPermissions lists every permission: what the platform's bootstrap
// client gets.
var PlatformPermissions = append(append([]Permission(nil), OrganizationPermissions...),
	PermOrganizationAdd, PermOrganizationView, PermEventAddAny)

// Organization is a tenant. Every client, and every usage query, belongs to
// one.
type Organization struct {
	ID   string
	Name string
	// Platform is true for the one organization that administers the others.
	Platform bool
	Created  time.Time
}

// Client is a registered OAuth client.
type Client struct {
	ID             string
	Name           string
	Description    string
	OrganizationID string
	Permissions    []Permission
	// SecretHash is a slow hash of the secret; the secret itself is never
	// stored.
	SecretHash []byte
	// Generation increases with every secret rotation. Tokens carry the
	// generation they were issued at, so rotating revokes them at once.
	Generation int
	Created    time.Time
}

// Has reports whether c holds the permission.
func (c Client) Has(p Permission) bool {
	for _, q := range c.Permissions {
		if q == p {
			return true
		}
	}
	return false
}

// Directory keeps organizations and their clients.
//
// Lookups of things that do not exist return ErrNotFound; creating something
// whose id exists returns an *Error with CodeConflict. Implementations are
// safe for concurrent use, and every change is durable when it returns.
type Directory interface {
	// CreateOrganization creates an organization together with its first
	// clients, all or nothing.
	CreateOrganization(ctx context.Context, org Organization, clients ...Client) error
	Organization(ctx context.Context, id string) (Organization, error)
	// PlatformOrganization returns the platform organization, or ErrNotFound
	// before it exists.
	PlatformOrganization(ctx context.Context) (Organization, error)

	CreateClient(ctx context.Context, c Client) error
	Client(ctx context.Context, id string) (Client, error)
	// Clients lists an organization's clients ordered by name, then id.
	Clients(ctx context.Context, organizationID string) ([]Client, error)
	// UpdateClient replaces the stored client with c's id.
	UpdateClient(ctx context.Context, c Client) error
	DeleteClient(ctx context.Context, id string) error
}
