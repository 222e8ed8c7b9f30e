// Package apiusage is the domain of the apiusage service: the events it
// records, the questions the Usage API answers about them, and the small
// interfaces the rest of the module is built around.
//
// The root package imports only the standard library. Implementations live in
// one package per dependency (the embedded store, the HTTP server, the Go
// client) and depend on the types declared here; cmd/apiusage wires them
// together.
//
// The wire contract is the Genesys Cloud Usage API: endpoints that start
// asynchronous executions over daily counts of 2xx/3xx/4xx/5xx/429 responses
// per OAuth client, user, template URI and HTTP method.
package apiusage
