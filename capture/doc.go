// Package capture records API requests as usage events: a net/http
// middleware for Go services, and a recording reverse proxy (what
// apiusage proxy runs) for any API.
//
// Each request becomes an apiusage.Event: its time, the organization, client
// and user of its bearer token, its template URI, method and final status.
//
//   - Identity: a Verifier checks bearer tokens offline against a JWKS — the
//     apiusage server's own ({url}/oauth/jwks), or an identity provider's,
//     with the claims that carry organization, client and user named in
//     Claims. It accepts EdDSA, RS256 and ES256, remembers verified tokens
//     until they expire, and refetches the keys on an unknown key id at most
//     once per VerifierConfig.MinRefresh. Being offline, it cannot see a
//     token revoked on the server before the token expires.
//   - Template: the http.ServeMux pattern the request was routed with, else
//     the most specific match in a Routes table (an OpenAPI document or a
//     list of templates), else one configurable template: never the raw
//     path, which would leak identifiers and explode cardinality.
//   - Status: the final one, 500 for a handler that panicked (the panic goes
//     on), 200 for one that never called WriteHeader.
//   - Requests without a valid token are served unrecorded by default (with
//     no token there is no organization to count them in) and counted;
//     Config.Unauthenticated can record them under a fixed identity, or
//     reject them with 401 as the proxy does by default.
//
// An event the Usage API cannot count is dropped and counted (reason
// "invalid") rather than sent: a method outside GET, POST, PUT, PATCH,
// DELETE, HEAD, OPTIONS, CONNECT and TRACE, or a template longer than the
// server takes.
//
// Recording never blocks the request: a Recorder keeps events in a bounded
// buffer and ships them in batches from one goroutine to an
// apiusage.Appender — a Store in the same process, or an HTTPSender posting
// to a server's ingest endpoint. A batch that fails is retried with backoff
// under one Idempotency-Key, so that it is counted once however many
// attempts reach the server; a full buffer drops events and counts them in
// apiusage_capture_events_dropped_total. Recorder.Close flushes.
//
// Retrying lives in the Recorder rather than in each Appender so that the
// in-process store and the HTTP sender get the same policy; HTTPSender is
// this package's own small client of the ingest endpoint, since capture
// depends on the root package only, not on the Go client.
package capture
