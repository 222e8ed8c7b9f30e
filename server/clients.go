package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/apiusage/apiusage"
	"golang.org/x/crypto/bcrypt"
)

// Limits on names and descriptions of organizations and clients.
const (
	maxNameLength        = 256
	maxDescriptionLength = 2048
)

// Paging of the client list.
const (
	defaultClientPageSize = 25
	maxClientPageSize     = 500
)

// timeFormat is how the platform writes dateCreated: UTC with milliseconds,
// as the reference platform does.
const timeFormat = "2006-01-02T15:04:05.000Z"

// clientJSON is an OAuth client on the wire. It never holds a stored secret;
// Secret is set only in the answers that create one.
type clientJSON struct {
	ID                  string   `json:"id"`
	Name                string   `json:"name"`
	Description         string   `json:"description"`
	OrganizationID      string   `json:"organizationId"`
	Permissions         []string `json:"permissions"`
	AuthorizedGrantType string   `json:"authorizedGrantType"`
	DateCreated         string   `json:"dateCreated"`
	Secret              string   `json:"secret,omitempty"`
}

func clientView(c apiusage.Client) clientJSON {
	perms := c.Permissions
	if perms == nil {
		perms = []string{}
	}
	return clientJSON{
		ID:                  c.ID,
		Name:                c.Name,
		Description:         c.Description,
		OrganizationID:      c.OrganizationID,
		Permissions:         perms,
		AuthorizedGrantType: "CLIENT-CREDENTIALS",
		DateCreated:         c.Created.UTC().Format(timeFormat),
	}
}

// organizationJSON is an organization on the wire; AdminClient is set only
// when it was just created.
type organizationJSON struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	DateCreated string      `json:"dateCreated"`
	AdminClient *clientJSON `json:"adminClient,omitempty"`
}

// checkName validates a required name field.
func checkName(field, name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", badRequest("%s is required", field)
	case len(name) > maxNameLength:
		return "", badRequest("%s: longer than %d bytes", field, maxNameLength)
	case !utf8.ValidString(name):
		return "", badRequest("%s: not valid UTF-8", field)
	}
	return name, nil
}

// hashSecret returns a new secret and its bcrypt hash.
func (s *Server) hashSecret(ctx context.Context) (string, []byte, error) {
	secret := newSecret()
	if err := s.hashing.acquire(ctx); err != nil {
		return "", nil, err
	}
	defer s.hashing.release()
	hash, err := bcrypt.GenerateFromPassword([]byte(secret), s.cfg.HashCost)
	if err != nil {
		return "", nil, wrap("hash secret", err)
	}
	return secret, hash, nil
}

// handleCreateOrganization is POST /api/v2/organizations: a new
// organization and its first client, which holds every organization
// permission.
func (s *Server) handleCreateOrganization() apiFunc {
	return func(r *http.Request, c *caller) (int, any, error) {
		var body struct {
			Name string `json:"name"`
		}
		if err := decodeJSON(r.Body, &body); err != nil {
			return 0, nil, err
		}
		name, err := checkName("name", body.Name)
		if err != nil {
			return 0, nil, err
		}
		secret, hash, err := s.hashSecret(r.Context())
		if err != nil {
			return 0, nil, err
		}
		now := s.cfg.Now().UTC()
		org := apiusage.Organization{ID: newID(), Name: name, Created: now}
		admin := apiusage.Client{
			ID:             newID(),
			Name:           name + " admin",
			Description:    "The first client of " + name + ".",
			OrganizationID: org.ID,
			Permissions:    slices.Clone(apiusage.OrganizationPermissions),
			SecretHash:     hash,
			Created:        now,
		}
		if err := s.dir.CreateOrganization(r.Context(), org, admin); err != nil {
			return 0, nil, wrap("create organization", err)
		}
		s.log.Info("organization created", "contextId", contextID(r), "organizationId", org.ID, "by", c.client.ID)
		view := clientView(admin)
		view.Secret = secret
		return http.StatusCreated, organizationJSON{
			ID: org.ID, Name: org.Name, DateCreated: now.Format(timeFormat), AdminClient: &view,
		}, nil
	}
}

// handleGetOrganization is GET /api/v2/organizations/{organizationId}: the
// caller's own organization, or any with platform:organization:view. Others
// are 404, so that ids do not leak.
func (s *Server) handleGetOrganization() apiFunc {
	return func(r *http.Request, c *caller) (int, any, error) {
		id := r.PathValue("organizationId")
		if id != c.org() {
			ok, err := s.holds(r.Context(), c, apiusage.PermOrganizationView)
			if err != nil {
				return 0, nil, err
			}
			if !ok {
				return 0, nil, apiusage.ErrNotFound
			}
		}
		org, err := s.dir.Organization(r.Context(), id)
		if err != nil {
			if apiusage.ErrorCode(err) == apiusage.CodeNotFound {
				return 0, nil, apiusage.ErrNotFound
			}
			return 0, nil, wrap("load organization", err)
		}
		return http.StatusOK, organizationJSON{ID: org.ID, Name: org.Name, DateCreated: org.Created.UTC().Format(timeFormat)}, nil
	}
}

// clientRequest is the body of a client's POST and PUT.
type clientRequest struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Permissions is nil when absent: a PUT then keeps them.
	Permissions []string `json:"permissions"`
}

// check validates the request and returns it cleaned: the name trimmed,
// permissions known and without repeats.
func (b clientRequest) check() (clientRequest, error) {
	var errs []error
	name, err := checkName("name", b.Name)
	if err != nil {
		errs = append(errs, err)
	}
	b.Name = name
	if len(b.Description) > maxDescriptionLength || !utf8.ValidString(b.Description) {
		errs = append(errs, badRequest("description: longer than %d bytes or not UTF-8", maxDescriptionLength))
	}
	if b.Permissions != nil {
		perms := []string{}
		for _, p := range b.Permissions {
			if !slices.Contains(apiusage.PlatformPermissions, p) {
				errs = append(errs, badRequest("permissions: unknown value %q", p))
				continue
			}
			if !slices.Contains(perms, p) {
				perms = append(perms, p)
			}
		}
		b.Permissions = perms
	}
	if len(errs) > 0 {
		return b, errors.Join(errs...)
	}
	return b, nil
}

// checkGrant returns the 403 naming the permissions of grant the caller does
// not hold itself: a client cannot give more than it has, and platform-only
// permissions exist only in the platform organization.
func (s *Server) checkGrant(ctx context.Context, c *caller, grant []string) error {
	var missing []string
	for _, p := range grant {
		ok, err := s.holds(ctx, c, p)
		if err != nil {
			return err
		}
		if !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return missingPermissions("You cannot grant permissions you do not hold", missing)
	}
	return nil
}

// handleCreateClient is POST /api/v2/oauth/clients.
func (s *Server) handleCreateClient() apiFunc {
	return func(r *http.Request, c *caller) (int, any, error) {
		var body clientRequest
		if err := decodeJSON(r.Body, &body); err != nil {
			return 0, nil, err
		}
		body, err := body.check()
		if err != nil {
			return 0, nil, err
		}
		if body.Permissions == nil {
			body.Permissions = []string{}
		}
		if err := s.checkGrant(r.Context(), c, body.Permissions); err != nil {
			return 0, nil, err
		}
		secret, hash, err := s.hashSecret(r.Context())
		if err != nil {
			return 0, nil, err
		}
		client := apiusage.Client{
			ID:             newID(),
			Name:           body.Name,
			Description:    body.Description,
			OrganizationID: c.org(),
			Permissions:    body.Permissions,
			SecretHash:     hash,
			Created:        s.cfg.Now().UTC(),
		}
		if err := s.dir.CreateClient(r.Context(), client); err != nil {
			return 0, nil, wrap("create client", err)
		}
		s.log.Info("client created", "contextId", contextID(r), "clientId", client.ID, "by", c.client.ID)
		view := clientView(client)
		view.Secret = secret
		return http.StatusCreated, view, nil
	}
}

// clientPage is a page of the client list.
type clientPage struct {
	Entities   []clientJSON `json:"entities"`
	PageSize   int          `json:"pageSize"`
	PageNumber int          `json:"pageNumber"`
	Total      int          `json:"total"`
	PageCount  int          `json:"pageCount"`
}

// handleListClients is GET /api/v2/oauth/clients.
func (s *Server) handleListClients() apiFunc {
	return func(r *http.Request, c *caller) (int, any, error) {
		params, err := queryParams(r)
		if err != nil {
			return 0, nil, err
		}
		size, number := defaultClientPageSize, 1
		if v := params.Get("pageSize"); v != "" {
			n, ok := parseSmallUint(v)
			if !ok || n < 1 || n > maxClientPageSize {
				return 0, nil, badRequest("pageSize: must be a whole number from 1 to %d, got %q", maxClientPageSize, v)
			}
			size = n
		}
		if v := params.Get("pageNumber"); v != "" {
			n, ok := parseSmallUint(v)
			if !ok || n < 1 {
				return 0, nil, badRequest("pageNumber: must be a whole number from 1, got %q", v)
			}
			number = n
		}
		clients, err := s.dir.Clients(r.Context(), c.org())
		if err != nil {
			return 0, nil, wrap("list clients", err)
		}
		page := clientPage{
			Entities:   []clientJSON{},
			PageSize:   size,
			PageNumber: number,
			Total:      len(clients),
			PageCount:  (len(clients) + size - 1) / size,
		}
		if start := (number - 1) * size; start < len(clients) {
			for _, cl := range clients[start:min(start+size, len(clients))] {
				page.Entities = append(page.Entities, clientView(cl))
			}
		}
		return http.StatusOK, page, nil
	}
}

// handleGetClient is GET /api/v2/oauth/clients/{clientId}.
func (s *Server) handleGetClient() apiFunc {
	return func(r *http.Request, c *caller) (int, any, error) {
		client, err := s.clientOf(r.Context(), c, r.PathValue("clientId"))
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, clientView(client), nil
	}
}

// handleUpdateClient is PUT /api/v2/oauth/clients/{clientId}: a new name
// and description, and new permissions when given. Only the permissions it
// adds must be held by the caller; removing needs only oauth:client:edit.
func (s *Server) handleUpdateClient() apiFunc {
	return func(r *http.Request, c *caller) (int, any, error) {
		var body clientRequest
		if err := decodeJSON(r.Body, &body); err != nil {
			return 0, nil, err
		}
		body, err := body.check()
		if err != nil {
			return 0, nil, err
		}
		s.clientMu.Lock()
		defer s.clientMu.Unlock()
		client, err := s.clientOf(r.Context(), c, r.PathValue("clientId"))
		if err != nil {
			return 0, nil, err
		}
		if body.Permissions != nil {
			var added []string
			for _, p := range body.Permissions {
				if !client.Has(p) {
					added = append(added, p)
				}
			}
			if err := s.checkGrant(r.Context(), c, added); err != nil {
				return 0, nil, err
			}
			client.Permissions = body.Permissions
		}
		client.Name, client.Description = body.Name, body.Description
		if err := s.dir.UpdateClient(r.Context(), client); err != nil {
			return 0, nil, wrap("update client", err)
		}
		return http.StatusOK, clientView(client), nil
	}
}

// handleDeleteClient is DELETE /api/v2/oauth/clients/{clientId}. Its tokens
// stop working at once, since every call loads the client. A client cannot
// delete itself: that is how an organization would lock itself out.
func (s *Server) handleDeleteClient() apiFunc {
	return func(r *http.Request, c *caller) (int, any, error) {
		client, err := s.clientOf(r.Context(), c, r.PathValue("clientId"))
		if err != nil {
			return 0, nil, err
		}
		if client.ID == c.client.ID {
			return 0, nil, apiusage.Errorf(apiusage.CodeConflict, "A client cannot delete itself; use another client of the organization.")
		}
		if err := s.dir.DeleteClient(r.Context(), client.ID); err != nil {
			if apiusage.ErrorCode(err) == apiusage.CodeNotFound {
				return 0, nil, apiusage.ErrNotFound
			}
			return 0, nil, wrap("delete client", err)
		}
		s.log.Info("client deleted", "contextId", contextID(r), "clientId", client.ID, "by", c.client.ID)
		return http.StatusNoContent, nil, nil
	}
}

// handleRotateSecret is POST /api/v2/oauth/clients/{clientId}/secret: a new
// secret, shown once; the generation moves on, so the old secret and every
// token issued before stop working at once.
func (s *Server) handleRotateSecret() apiFunc {
	return func(r *http.Request, c *caller) (int, any, error) {
		if _, err := s.clientOf(r.Context(), c, r.PathValue("clientId")); err != nil {
			return 0, nil, err
		}
		secret, hash, err := s.hashSecret(r.Context())
		if err != nil {
			return 0, nil, err
		}
		s.clientMu.Lock()
		defer s.clientMu.Unlock()
		client, err := s.clientOf(r.Context(), c, r.PathValue("clientId"))
		if err != nil {
			return 0, nil, err
		}
		client.SecretHash = hash
		client.Generation++
		if err := s.dir.UpdateClient(r.Context(), client); err != nil {
			return 0, nil, wrap("update client", err)
		}
		s.log.Info("client secret rotated", "contextId", contextID(r), "clientId", client.ID, "by", c.client.ID)
		view := clientView(client)
		view.Secret = secret
		return http.StatusOK, view, nil
	}
}
