package capture_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/capture"
)

func ExampleRoutes_Match() {
	routes, err := capture.NewRoutes([]string{
		"/api/v2/users/{userId}",
		"/api/v2/users/me",
	})
	if err != nil {
		panic(err)
	}
	for _, path := range []string{"/api/v2/users/8f2c", "/api/v2/users/me", "/api/v2/groups/1"} {
		template, ok := routes.Match(path)
		fmt.Printf("%s -> %q %v\n", path, template, ok)
	}
	// Output:
	// /api/v2/users/8f2c -> "api/v2/users/{userId}" true
	// /api/v2/users/me -> "api/v2/users/me" true
	// /api/v2/groups/1 -> "" false
}

func ExamplePatternTemplate() {
	fmt.Println(capture.PatternTemplate("GET /api/v2/users/{userId}"))
	fmt.Println(capture.PatternTemplate("api.example.com/api/v2/groups/{groupId}"))
	// Output:
	// api/v2/users/{userId}
	// api/v2/groups/{groupId}
}

// printer is an Appender that prints what it is given.
type printer struct{ mu sync.Mutex }

func (p *printer) Append(_ context.Context, b apiusage.Batch) (apiusage.Receipt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range b.Events {
		fmt.Println(e.OrganizationID, e.ClientID, e.Method, e.TemplateURI, e.Status)
	}
	return apiusage.Receipt{Accepted: len(b.Events)}, nil
}

// ExampleMiddleware wraps a ServeMux. Here requests carry no token and are
// recorded under a fixed identity; with tokens, the identity is theirs. In a
// real service the Appender is an HTTPSender to the apiusage server, or a
// Store in the same process.
func ExampleMiddleware() {
	rec, err := capture.NewRecorder(&printer{}, capture.RecorderConfig{})
	if err != nil {
		panic(err)
	}
	verifier, err := capture.NewVerifier(capture.VerifierConfig{JWKSURL: "http://127.0.0.1:8080/oauth/jwks"})
	if err != nil {
		panic(err)
	}
	mw, err := capture.Middleware(capture.Config{
		Recorder:        rec,
		Verifier:        verifier,
		Unauthenticated: capture.PassRecorded,
		Anonymous:       capture.Identity{OrganizationID: "public", ClientID: "anonymous"},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v2/users/{userId}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("userId") == "0" {
			http.NotFound(w, r)
		}
	})
	h := mw(mux)
	for _, path := range []string{"/api/v2/users/7", "/api/v2/users/0", "/robots.txt"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
	if err := rec.Close(context.Background()); err != nil { // flushes
		panic(err)
	}
	// Output:
	// public anonymous GET api/v2/users/{userId} 200
	// public anonymous GET api/v2/users/{userId} 404
	// public anonymous GET unmatched 404
}
