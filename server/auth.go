package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/apiusage/apiusage"
	"golang.org/x/crypto/bcrypt"
)

// caller is the authenticated client of a request.
type caller struct {
	client apiusage.Client
	// platform is whether the client's organization is the platform
	// organization; known once a platform-only permission was checked.
	platform *bool
}

// org returns the caller's organization id.
func (c *caller) org() string { return c.client.OrganizationID }

// platformOnly reports whether p may be held only in the platform
// organization.
func platformOnly(p apiusage.Permission) bool {
	return !slices.Contains(apiusage.OrganizationPermissions, p)
}

// holds reports whether the caller holds p now. A platform-only permission
// counts only within the platform organization, whatever the stored client
// says: a defence in depth for a directory edited by hand.
func (s *Server) holds(ctx context.Context, c *caller, p apiusage.Permission) (bool, error) {
	if !c.client.Has(p) {
		return false, nil
	}
	if !platformOnly(p) {
		return true, nil
	}
	if c.platform == nil {
		org, err := s.dir.Organization(ctx, c.org())
		if err != nil {
			if apiusage.ErrorCode(err) == apiusage.CodeNotFound {
				f := false
				c.platform = &f
				return false, nil
			}
			return false, wrap("load caller organization", err)
		}
		c.platform = &org.Platform
	}
	return *c.platform, nil
}

// requireAny returns nil when the caller holds at least one of the
// permissions (or none are listed), and else the contract's 403 naming them.
func (s *Server) requireAny(ctx context.Context, c *caller, anyOf ...apiusage.Permission) error {
	if len(anyOf) == 0 {
		return nil
	}
	for _, p := range anyOf {
		ok, err := s.holds(ctx, c, p)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
	return missingPermissions("You must have at least one of these permissions", anyOf)
}

// missingPermissions returns the 403 that names the permissions.
func missingPermissions(why string, perms []apiusage.Permission) error {
	list := strings.Join(perms, ", ")
	return &apiusage.Error{
		Code:    apiusage.CodeMissingPerms,
		Message: "Unable to perform the requested action. " + why + ": " + list,
		Params:  map[string]string{"permissions": list},
	}
}

// authenticate checks the request's bearer token and loads its client. The
// client is loaded on every call, so that a deleted client or a rotated
// secret revokes its tokens at once and permissions are always current.
func (s *Server) authenticate(r *http.Request) (*caller, error) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return nil, apiusage.Errorf(apiusage.CodeAuthRequired, "No authentication bearer token specified in authorization header.")
	}
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, apiusage.Errorf(apiusage.CodeAuthRequired, "No authentication bearer token specified in authorization header.")
	}
	badToken := apiusage.Errorf(apiusage.CodeBadCredentials, "Invalid login credentials.")
	claims, err := s.tokens.verify(strings.TrimSpace(token), s.cfg.Now())
	if err != nil {
		s.log.Debug("token rejected", "contextId", contextID(r), "err", err)
		return nil, badToken
	}
	client, err := s.dir.Client(r.Context(), claims.Subject)
	if err != nil {
		if apiusage.ErrorCode(err) == apiusage.CodeNotFound {
			s.log.Debug("token of a deleted client", "contextId", contextID(r), "clientId", claims.Subject)
			return nil, badToken
		}
		return nil, wrap("load token client", err)
	}
	if client.OrganizationID != claims.Organization || client.Generation != claims.Generation {
		s.log.Debug("revoked token", "contextId", contextID(r), "clientId", claims.Subject)
		return nil, badToken
	}
	info(r).clientID = client.ID
	return &caller{client: client}, nil
}

// tokenResponse is the body of a successful POST /oauth/token.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

// oauthError is the body of a failed POST /oauth/token, in the shape of the
// Genesys Cloud login service (RFC 6749 §5.2 plus its "description").
type oauthError struct {
	Error            string `json:"error"`
	Description      string `json:"description"`
	ErrorDescription string `json:"error_description"`
}

func (s *Server) writeOAuthError(w http.ResponseWriter, r *http.Request, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="apiusage"`)
	}
	s.writeJSON(w, r, status, oauthError{Error: code, Description: desc, ErrorDescription: desc})
}

// handleToken is POST /oauth/token: the client credentials grant, with the
// credentials in Basic auth or in the client_id and client_secret fields.
func (s *Server) handleToken() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				s.writeOAuthError(w, r, http.StatusRequestEntityTooLarge, "invalid_request", "request body too large")
				return
			}
			s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_request", "malformed form body")
			return
		}
		switch grant := r.PostForm.Get("grant_type"); grant {
		case "client_credentials":
		case "":
			s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_request", "grant_type is required")
			return
		default:
			s.writeOAuthError(w, r, http.StatusBadRequest, "unsupported_grant_type", "only the client_credentials grant is supported")
			return
		}
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if id == "" || secret == "" {
			s.writeOAuthError(w, r, http.StatusUnauthorized, "invalid_client", "client credentials are required")
			return
		}
		client, err := s.login(r.Context(), id, secret)
		if err != nil {
			if apiusage.ErrorCode(err) == apiusage.CodeBadCredentials {
				s.writeOAuthError(w, r, http.StatusUnauthorized, "invalid_client", "invalid client credentials")
				return
			}
			s.log.Error("login", "contextId", contextID(r), "err", err)
			s.writeOAuthError(w, r, http.StatusInternalServerError, "server_error", "internal error; the contextId is in the server log")
			return
		}
		now := s.cfg.Now()
		token, err := s.tokens.sign(tokenClaims{
			Subject:      client.ID,
			Organization: client.OrganizationID,
			Generation:   client.Generation,
			IssuedAt:     now.Unix(),
			Expires:      now.Add(s.cfg.TokenTTL).Unix(),
			ID:           newID(),
		})
		if err != nil {
			s.log.Error("sign token", "contextId", contextID(r), "err", err)
			s.writeOAuthError(w, r, http.StatusInternalServerError, "server_error", "internal error; the contextId is in the server log")
			return
		}
		info(r).clientID = client.ID
		w.Header().Set("Pragma", "no-cache")
		s.writeJSON(w, r, http.StatusOK, tokenResponse{
			AccessToken: token,
			TokenType:   "bearer",
			ExpiresIn:   int64(s.cfg.TokenTTL.Seconds()),
		})
	})
}

// login returns the client whose id and secret these are, or a
// bad.credentials error. An unknown client costs a hash comparison too, so
// that the time of an answer does not tell which client ids exist.
func (s *Server) login(ctx context.Context, id, secret string) (apiusage.Client, error) {
	client, err := s.dir.Client(ctx, id)
	hash := client.SecretHash
	known := err == nil
	if err != nil {
		if apiusage.ErrorCode(err) != apiusage.CodeNotFound {
			return apiusage.Client{}, wrap("load client", err)
		}
		hash = s.dummyHash
	}
	if err := s.hashing.acquire(ctx); err != nil {
		return apiusage.Client{}, err
	}
	mismatch := bcrypt.CompareHashAndPassword(hash, []byte(secret))
	s.hashing.release()
	if !known || mismatch != nil {
		return apiusage.Client{}, apiusage.Errorf(apiusage.CodeBadCredentials, "invalid client credentials")
	}
	return client, nil
}

// handleJWKS is GET /oauth/jwks: the public key that verifies access tokens.
func (s *Server) handleJWKS() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeJSON(w, r, http.StatusOK, s.tokens.jwks())
	})
}
