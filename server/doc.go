// Package server is the HTTP surface of apiusage: the Genesys Cloud Usage API
// (usage-api.md), the OAuth token endpoint that guards it, and the platform's
// organizations, clients, ingestion and operations endpoints (platform.md).
//
// The server depends only on the root package's interfaces: a usage Store, a
// Directory of organizations and clients, and an ExecutionRegistry that keeps
// asynchronous query executions. cmd/apiusage builds them and calls New:
//
//	srv, err := server.New(server.Config{}, logger, store, dir, execs, key, registry)
//	if err != nil { ... }
//	httpServer := &http.Server{Addr: addr, Handler: srv}
//	// ... on shutdown, after httpServer.Shutdown:
//	err = srv.Close(ctx)
//
// and, at every start before serving, Bootstrap to create the platform
// organization and its first client.
//
// # Shape
//
// routes.go lists every endpoint. Usage API handlers are apiFuncs: they
// return a status and a body, or an error, and the api wrapper authenticates
// the caller, checks its permissions, limits the body, encodes the JSON and
// turns domain errors (apiusage.Error) into the contract's ErrorBody. Every
// response carries the request's random contextId in ININ-Correlation-Id;
// internal errors are logged under it and answered with a generic message.
//
// Access tokens are JWTs signed with Ed25519 (alg EdDSA). A token names its
// client, the client's organization and the client's secret generation; each
// API call loads the client again, so deleting a client or rotating its secret
// revokes its tokens at once, and permissions are always the client's current
// ones. The public key is published as a JWKS at /oauth/jwks for components
// that verify tokens offline.
//
// Ingestion decodes bodies with a parser of its own (ingestdecode.go), held to
// encoding/json by a differential fuzz test. It interns each batch's strings
// and hands the store both the events and the table of their distinct
// strings (apiusage.BatchStrings), through which it also validates each
// distinct string once; the events and tables live in the parser, reused
// from batch to batch once Append has returned. At most Config.MaxIngests
// batches are read and stored at once, so that the bodies and parsers in
// memory are bounded however many connections post: a batch past it waits
// for a turn before its body is read, for up to Config.IngestWait, and is
// then answered 429; a body still arriving Config.IngestReadTimeout after
// its turn came is answered 400, and the turn freed.
//
// Queries run on a bounded pool of workers. A POST validates the request,
// records a Running execution and answers 202 at once; the worker replaces the
// execution with its Complete or Failed state, which the registry keeps for
// Config.ResultTTL. Each organization may have at most
// Config.MaxRunningPerOrg executions queued or running.
//
// The rows of complete executions are kept by the server itself (results.go),
// compactly (each distinct string once, already JSON-encoded), within
// Config.ResultMemory bytes in all: past it the oldest results of the
// organizations holding more than their fair share are dropped, so that no
// caller can exhaust memory by running large queries again and again, and no
// tenant's queries can drop another's results within its share. A poll of a
// dropped result is a 404 that says so. A complete query's body is encoded on
// each poll, in chunks written as they are encoded, with its length computed
// beforehand.
package server
