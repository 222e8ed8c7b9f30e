package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/apiusage/apiusage"
)

// Organization is an organization (a tenant) of an apiusage server.
type Organization struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	DateCreated time.Time `json:"dateCreated,omitzero"`
}

// OrganizationCreate is the body of CreateOrganization.
type OrganizationCreate struct {
	Name string `json:"name"`
}

// CreatedOrganization is a new organization with its first client, whose
// secret is shown only here.
type CreatedOrganization struct {
	Organization
	AdminClient CreatedClient `json:"adminClient"`
}

// OAuthClient is a registered OAuth client. Its secret is never part of it.
type OAuthClient struct {
	ID                  string                `json:"id"`
	Name                string                `json:"name"`
	Description         string                `json:"description,omitempty"`
	OrganizationID      string                `json:"organizationId,omitempty"`
	Permissions         []apiusage.Permission `json:"permissions"`
	AuthorizedGrantType string                `json:"authorizedGrantType,omitempty"`
	DateCreated         time.Time             `json:"dateCreated,omitzero"`
}

// CreatedClient is a client together with its secret, as the calls that
// create a client or rotate its secret return it: the only time the secret
// is shown.
type CreatedClient struct {
	OAuthClient
	Secret string `json:"secret"`
}

// ClientCreate is the body of CreateClient.
type ClientCreate struct {
	Name        string                `json:"name"`
	Description string                `json:"description,omitempty"`
	Permissions []apiusage.Permission `json:"permissions"`
}

// ClientUpdate is the body of UpdateClient: the client's new name and
// description, and its new permissions unless Permissions is nil. An empty,
// non-nil list takes every permission away.
type ClientUpdate struct {
	Name        string                `json:"name"`
	Description string                `json:"description"`
	Permissions []apiusage.Permission `json:"permissions,omitzero"`
}

// ClientPage is a page of ListClients.
type ClientPage struct {
	Entities   []OAuthClient `json:"entities"`
	PageSize   int           `json:"pageSize"`
	PageNumber int           `json:"pageNumber"`
	Total      int           `json:"total"`
	PageCount  int           `json:"pageCount,omitempty"`
}

// ListOptions select a page of ListClients.
type ListOptions struct {
	// PageSize and PageNumber (from 1); zero means the server's default.
	PageSize, PageNumber int
}

// CreateOrganization creates an organization and its first client (POST
// /api/v2/organizations). It needs platform:organization:add.
func (c *Client) CreateOrganization(ctx context.Context, body OrganizationCreate) (*CreatedOrganization, error) {
	r, err := jsonRequest(http.MethodPost, "/api/v2/organizations", body)
	if err != nil {
		return nil, err
	}
	var out CreatedOrganization
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetOrganization reads an organization (GET
// /api/v2/organizations/{organizationId}): the caller's own, or any with
// platform:organization:view.
func (c *Client) GetOrganization(ctx context.Context, organizationID string) (*Organization, error) {
	var out Organization
	r := request{method: http.MethodGet, path: "/api/v2/organizations/" + escape(organizationID), idempotent: true}
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateClient creates a client in the caller's organization (POST
// /api/v2/oauth/clients). A caller can grant only permissions it holds.
func (c *Client) CreateClient(ctx context.Context, body ClientCreate) (*CreatedClient, error) {
	if body.Permissions == nil {
		body.Permissions = []apiusage.Permission{}
	}
	r, err := jsonRequest(http.MethodPost, "/api/v2/oauth/clients", body)
	if err != nil {
		return nil, err
	}
	var out CreatedClient
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListClients reads a page of the caller's organization's clients (GET
// /api/v2/oauth/clients). AllClients reads every page.
func (c *Client) ListClients(ctx context.Context, opts ListOptions) (*ClientPage, error) {
	q := url.Values{}
	if opts.PageSize > 0 {
		q.Set("pageSize", strconv.Itoa(opts.PageSize))
	}
	if opts.PageNumber > 0 {
		q.Set("pageNumber", strconv.Itoa(opts.PageNumber))
	}
	var out ClientPage
	r := request{method: http.MethodGet, path: "/api/v2/oauth/clients", query: q, idempotent: true}
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AllClients yields every client of the caller's organization, reading
// pages of pageSize (the server's default when zero). Iteration stops at the
// first error, which is yielded.
func (c *Client) AllClients(ctx context.Context, pageSize int) iter.Seq2[OAuthClient, error] {
	return func(yield func(OAuthClient, error) bool) {
		seen := 0
		for number := 1; ; number++ {
			page, err := c.ListClients(ctx, ListOptions{PageSize: pageSize, PageNumber: number})
			if err != nil {
				yield(OAuthClient{}, err)
				return
			}
			for _, cl := range page.Entities {
				if !yield(cl, nil) {
					return
				}
			}
			seen += len(page.Entities)
			// An empty page ends the list even when total says otherwise,
			// so that a list shrinking meanwhile cannot loop forever.
			if len(page.Entities) == 0 || seen >= page.Total {
				return
			}
		}
	}
}

// GetClient reads a client of the caller's organization (GET
// /api/v2/oauth/clients/{clientId}).
func (c *Client) GetClient(ctx context.Context, clientID string) (*OAuthClient, error) {
	var out OAuthClient
	r := request{method: http.MethodGet, path: "/api/v2/oauth/clients/" + escape(clientID), idempotent: true}
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateClient replaces a client's name, description and permissions (PUT
// /api/v2/oauth/clients/{clientId}).
func (c *Client) UpdateClient(ctx context.Context, clientID string, body ClientUpdate) (*OAuthClient, error) {
	r, err := jsonRequest(http.MethodPut, "/api/v2/oauth/clients/"+escape(clientID), body)
	if err != nil {
		return nil, err
	}
	var out OAuthClient
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteClient deletes a client (DELETE /api/v2/oauth/clients/{clientId});
// its tokens stop working at once.
func (c *Client) DeleteClient(ctx context.Context, clientID string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "/api/v2/oauth/clients/" + escape(clientID)}, nil)
	return err
}

// RotateClientSecret gives a client a new secret (POST
// /api/v2/oauth/clients/{clientId}/secret); the old secret and the tokens
// issued with it stop working.
func (c *Client) RotateClientSecret(ctx context.Context, clientID string) (*CreatedClient, error) {
	var out CreatedClient
	r := request{method: http.MethodPost, path: "/api/v2/oauth/clients/" + escape(clientID) + "/secret"}
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	if out.Secret == "" {
		return nil, errors.New("rotate client secret: the answer holds no secret")
	}
	return &out, nil
}

// IdempotencyKeyHeader is the header that makes an ingest batch idempotent.
const IdempotencyKeyHeader = "Idempotency-Key"

// ReplayedHeader is the response header by which the server tells that an
// ingest batch repeated an idempotency key and was not stored again.
const ReplayedHeader = "Idempotent-Replayed"

// PostUsageEvents records a batch of events (POST /api/v2/usage/events), all
// or nothing. With an idempotency key the call is safe to repeat, and is
// retried like a GET: a batch repeated with the same key is not counted
// again. Without one, it is sent once.
func (c *Client) PostUsageEvents(ctx context.Context, events []apiusage.Event, idempotencyKey string) (apiusage.Receipt, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// NDJSON rather than an array: the server reads it event by event.
	for _, e := range events {
		if err := enc.Encode(e); err != nil {
			return apiusage.Receipt{}, fmt.Errorf("encode event: %w", err)
		}
	}
	r := request{
		method:      http.MethodPost,
		path:        "/api/v2/usage/events",
		body:        buf.Bytes(),
		contentType: "application/x-ndjson",
		idempotent:  idempotencyKey != "",
	}
	if idempotencyKey != "" {
		r.header = http.Header{IdempotencyKeyHeader: {idempotencyKey}}
	}
	var out apiusage.Receipt
	header, err := c.do(ctx, r, &out)
	if err != nil {
		return apiusage.Receipt{}, err
	}
	out.Replayed = header.Get(ReplayedHeader) == "true"
	return out, nil
}

// Append sends a batch to the server's ingest endpoint, so that a Client is
// an apiusage.Appender: a capture middleware or proxy can record to a remote
// server as it would to a local store. An empty batch sends nothing.
func (c *Client) Append(ctx context.Context, b apiusage.Batch) (apiusage.Receipt, error) {
	if len(b.Events) == 0 {
		return apiusage.Receipt{}, nil
	}
	return c.PostUsageEvents(ctx, b.Events, b.IdempotencyKey)
}

var _ apiusage.Appender = (*Client)(nil)
