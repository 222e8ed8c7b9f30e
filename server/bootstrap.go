package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/apiusage/apiusage"
	"golang.org/x/crypto/bcrypt"
)

// Names of what Bootstrap creates.
const (
	platformOrganizationName = "Platform"
	bootstrapClientName      = "bootstrap"
)

// Bootstrap prepares the directory at every start, as platform.md §1 says.
// It creates the platform organization if there is none. Then:
//
//   - With id and secret set (APIUSAGE_BOOTSTRAP_CLIENT_ID and _SECRET), it
//     makes sure the client with that id exists in the platform organization,
//     with that secret and every permission: it creates it, or updates it
//     (a changed secret is rehashed and moves the client to its next
//     generation, revoking its old tokens). It returns the client and an
//     empty secret: the operator knows it.
//   - With neither set, when the platform organization has no client yet, it
//     creates one with a generated id and secret and returns both; the secret
//     is not stored and cannot be shown again, so the caller prints it once.
//     When a client exists, it returns a nil client.
//
// cost is the bcrypt cost (0 for bcrypt.DefaultCost); now stamps what it
// creates. Running it again with the same arguments changes nothing. It is
// meant to run before the server serves; it does not lock against concurrent
// edits of the same client.
func Bootstrap(ctx context.Context, dir apiusage.Directory, id, secret string, cost int, now time.Time) (*apiusage.Client, string, error) {
	if (id == "") != (secret == "") {
		return nil, "", errors.New("bootstrap: set both the client id and the secret, or neither")
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	if len(id) > apiusage.MaxFieldLength {
		return nil, "", fmt.Errorf("bootstrap: client id longer than %d bytes", apiusage.MaxFieldLength)
	}
	now = now.UTC()
	generated := ""
	if id == "" {
		id, secret, generated = newID(), newSecret(), "yes"
	}
	newClient := func(orgID string) (apiusage.Client, error) {
		hash, err := bcrypt.GenerateFromPassword([]byte(secret), cost)
		if err != nil {
			return apiusage.Client{}, fmt.Errorf("bootstrap: hash secret: %w", err)
		}
		return apiusage.Client{
			ID:             id,
			Name:           bootstrapClientName,
			Description:    "Administers the platform; created at the first start.",
			OrganizationID: orgID,
			Permissions:    slices.Clone(apiusage.PlatformPermissions),
			SecretHash:     hash,
			Created:        now,
		}, nil
	}
	shown := func() string {
		if generated != "" {
			return secret
		}
		return ""
	}

	platform, err := dir.PlatformOrganization(ctx)
	if apiusage.ErrorCode(err) == apiusage.CodeNotFound {
		platform = apiusage.Organization{ID: newID(), Name: platformOrganizationName, Platform: true, Created: now}
		c, err := newClient(platform.ID)
		if err != nil {
			return nil, "", err
		}
		if err := dir.CreateOrganization(ctx, platform, c); err != nil {
			return nil, "", fmt.Errorf("bootstrap: create platform organization: %w", err)
		}
		return &c, shown(), nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("bootstrap: load platform organization: %w", err)
	}

	if generated != "" {
		existing, err := dir.Clients(ctx, platform.ID)
		if err != nil {
			return nil, "", fmt.Errorf("bootstrap: list platform clients: %w", err)
		}
		if len(existing) > 0 {
			return nil, "", nil
		}
		c, err := newClient(platform.ID)
		if err != nil {
			return nil, "", err
		}
		if err := dir.CreateClient(ctx, c); err != nil {
			return nil, "", fmt.Errorf("bootstrap: create client: %w", err)
		}
		return &c, secret, nil
	}

	c, err := dir.Client(ctx, id)
	if apiusage.ErrorCode(err) == apiusage.CodeNotFound {
		if c, err = newClient(platform.ID); err != nil {
			return nil, "", err
		}
		if err := dir.CreateClient(ctx, c); err != nil {
			return nil, "", fmt.Errorf("bootstrap: create client: %w", err)
		}
		return &c, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("bootstrap: load client: %w", err)
	}
	if c.OrganizationID != platform.ID {
		return nil, "", fmt.Errorf("bootstrap: client %q exists in another organization than the platform's", id)
	}
	changed := false
	for _, p := range apiusage.PlatformPermissions {
		if !c.Has(p) {
			c.Permissions = append(c.Permissions, p)
			changed = true
		}
	}
	if bcrypt.CompareHashAndPassword(c.SecretHash, []byte(secret)) != nil {
		hash, err := bcrypt.GenerateFromPassword([]byte(secret), cost)
		if err != nil {
			return nil, "", fmt.Errorf("bootstrap: hash secret: %w", err)
		}
		c.SecretHash = hash
		c.Generation++
		changed = true
	}
	if changed {
		if err := dir.UpdateClient(ctx, c); err != nil {
			return nil, "", fmt.Errorf("bootstrap: update client: %w", err)
		}
	}
	return &c, "", nil
}
