package server

import (
	"net/http"

	"github.com/apiusage/apiusage"
)

// routes lists the whole HTTP surface.
func (s *Server) routes(mux *http.ServeMux) {
	small, large := s.cfg.MaxBodyBytes, s.cfg.MaxIngestBodyBytes
	const (
		clientView   = apiusage.PermClientView
		clientAdd    = apiusage.PermClientAdd
		clientEdit   = apiusage.PermClientEdit
		clientDelete = apiusage.PermClientDelete
		usageOrg     = apiusage.PermUsageOrganization
		usageClient  = apiusage.PermUsageClient
		usageSearch  = apiusage.PermUsageSimpleSearch
	)

	// Operations, without a token.
	mux.Handle("GET /healthz", s.handleHealthz())
	mux.Handle("GET /metrics", s.handleMetrics())

	// OAuth (usage-api.md §6).
	mux.Handle("POST /oauth/token", limitBody(small, s.handleToken()))
	mux.Handle("GET /oauth/jwks", s.handleJWKS())

	// The Usage API (usage-api.md §1), numbered as there.
	mux.Handle("POST /api/v2/usage/query", // 1
		s.api(small, s.handleOrgQuery(), clientView, usageOrg))
	mux.Handle("GET /api/v2/usage/query/{executionId}/results", // 2
		s.api(small, s.handleOrgQueryResults(), clientView, usageOrg))
	mux.Handle("POST /api/v2/usage/simplesearch", // 3
		s.api(small, s.handleSimpleSearch(), clientView, usageSearch))
	mux.Handle("GET /api/v2/usage/simplesearch/{executionId}/results", // 4
		s.api(small, s.handleSimpleSearchResults(), clientView, usageSearch))
	mux.Handle("POST /api/v2/oauth/clients/{clientId}/usage/query", // 5
		s.api(small, s.handleClientQuery(), clientView, usageClient))
	mux.Handle("GET /api/v2/oauth/clients/{clientId}/usage/query/results/{executionId}", // 6
		s.api(small, s.handleClientQueryResults(), clientView, usageClient))
	mux.Handle("GET /api/v2/oauth/clients/{clientId}/usage/summary", // 7
		s.api(small, s.handleSummary(), clientView, usageClient))

	// Organizations (platform.md §2); permissions checked inside.
	mux.Handle("POST /api/v2/organizations", s.api(small, s.handleCreateOrganization(), apiusage.PermOrganizationAdd))
	mux.Handle("GET /api/v2/organizations/{organizationId}", s.api(small, s.handleGetOrganization()))

	// OAuth clients (platform.md §3).
	mux.Handle("POST /api/v2/oauth/clients", s.api(small, s.handleCreateClient(), clientAdd))
	mux.Handle("GET /api/v2/oauth/clients", s.api(small, s.handleListClients(), clientView))
	mux.Handle("GET /api/v2/oauth/clients/{clientId}", s.api(small, s.handleGetClient(), clientView))
	mux.Handle("PUT /api/v2/oauth/clients/{clientId}", s.api(small, s.handleUpdateClient(), clientEdit))
	mux.Handle("DELETE /api/v2/oauth/clients/{clientId}", s.api(small, s.handleDeleteClient(), clientDelete))
	mux.Handle("POST /api/v2/oauth/clients/{clientId}/secret", s.api(small, s.handleRotateSecret(), clientEdit))

	// Ingestion (platform.md §4).
	mux.Handle("POST /api/v2/usage/events", readDeadline(s.cfg.ingestReadTime(),
		s.api(large, s.handleIngest(), apiusage.PermEventAdd, apiusage.PermEventAddAny)))

	// Everything else is a 404 ErrorBody rather than the mux's plain text.
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errNoRoute(r))
	}))
}

// apiFunc handles an authenticated API call: it returns the status and body
// of a success (a nil body for none), or an error for writeError.
type apiFunc func(r *http.Request, c *caller) (int, any, error)

// api makes an apiFunc an http.Handler: it bounds the body to limit bytes,
// authenticates the caller, requires ANY of the permissions (none listed:
// the handler checks), and writes the answer.
func (s *Server) api(limit int64, fn apiFunc, anyOf ...apiusage.Permission) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		c, err := s.authenticate(r)
		if err == nil {
			err = s.requireAny(r.Context(), c, anyOf...)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		status, body, err := fn(r, c)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, status, body)
	})
}

// handleHealthz is GET /healthz: 200 while the server accepts requests, 503
// once Close was called, so a load balancer stops sending traffic.
func (s *Server) handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.closing.Load() {
			s.writeError(w, r, apiusage.Errorf(apiusage.CodeUnavailable, "The server is shutting down."))
			return
		}
		s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// errNoRoute is the 404 of a path the server does not serve.
func errNoRoute(r *http.Request) error {
	return apiusage.Errorf(apiusage.CodeNotFound, "No resource for %s %s.", r.Method, r.URL.Path)
}
