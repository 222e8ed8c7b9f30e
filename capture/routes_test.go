package capture

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestRoutesMatch(t *testing.T) {
	rt, err := NewRoutes([]string{
		"/api/v2/users/{userId}",
		"/api/v2/users/me",
		"/api/v2/users/{userId}/roles",
		"api/v2/users/{userId}/roles/{roleId}",
		"/api/v2/users/me/roles/{roleId}",
		"/api/v2/files/{name}.json",
		"/api/v2/files/{name}",
		"/api/v2/files/v{version}.tar.gz",
		"/static/{path...}",
		"/api/v2/orgs/{orgId}/{sub}",
	})
	if err != nil {
		t.Fatalf("NewRoutes: %v", err)
	}
	tests := []struct {
		path string
		want string // "" means no match
	}{
		{"/api/v2/users/123", "api/v2/users/{userId}"},
		{"/api/v2/users/123/", "api/v2/users/{userId}"},
		{"/api/v2/users/me", "api/v2/users/me"},
		{"/api/v2/users/me/roles", "api/v2/users/{userId}/roles"},
		{"/api/v2/users/42/roles/7", "api/v2/users/{userId}/roles/{roleId}"},
		{"/api/v2/users/me/roles/7", "api/v2/users/me/roles/{roleId}"},
		{"/api/v2/users/a%2Fb", "api/v2/users/{userId}"},
		{"/api/v2/files/report.json", "api/v2/files/{name}.json"},
		{"/api/v2/files/.json", "api/v2/files/{name}"},
		{"/api/v2/files/report.csv", "api/v2/files/{name}"},
		{"/api/v2/files/v1.2.tar.gz", "api/v2/files/v{version}.tar.gz"},
		{"/static/css/site.css", "static/{path...}"},
		{"/static/x", "static/{path...}"},
		{"/api/v2/orgs/1/2", "api/v2/orgs/{orgId}/{sub}"},
		{"/api/v2/users", ""},
		{"/api/v2/users//roles", ""},
		{"/api/v2/users/1/roles/2/3", ""},
		{"/api/v2/orgs/1", ""},
		{"/", ""},
		{"", ""},
		{"/nope", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, ok := rt.Match(tt.path)
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("Match(%q) = %q, %v; want %q, %v", tt.path, got, ok, tt.want, tt.want != "")
			}
		})
	}
}

// TestRoutesPrecedenceAgreesWithServeMux checks that, for templates a
// ServeMux accepts, the route table picks the pattern the mux picks.
func TestRoutesPrecedenceAgreesWithServeMux(t *testing.T) {
	templates := []string{
		"/a/b/{y}", "/a/b/c", "/a/{x}", "/a/b/{y}/d/{w}", "/a/b/c/d/{w}", "/q/{id}", "/q/{id}/{sub}/e", "/q/1/{sub}/e",
	}
	mux := http.NewServeMux()
	for _, tmpl := range templates {
		mux.HandleFunc(tmpl, func(http.ResponseWriter, *http.Request) {})
	}
	rt, err := NewRoutes(templates)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/a/b/c", "/a/z", "/a/b/z", "/a/b/c/d", "/a/b/c/d/e", "/a/b/q/d/e", "/q/7", "/a/b", "/a/z/c", "/q/1/x/e", "/q/2/x/e"} {
		_, pattern := mux.Handler(httptest.NewRequest("GET", path, nil))
		want := PatternTemplate(pattern)
		got, _ := rt.Match(path)
		if got != want {
			t.Errorf("Match(%q) = %q, ServeMux chose %q", path, got, want)
		}
	}
}

func TestNewRoutesErrors(t *testing.T) {
	tests := []struct {
		name      string
		templates []string
		want      string
	}{
		{"duplicate", []string{"/a/{x}", "/a/{y}"}, "conflicts"},
		{"empty", []string{"/"}, "empty template"},
		{"unbalanced", []string{"/a/{x"}, "unbalanced"},
		{"two params in a segment", []string{"/a/{x}-{y}"}, "at most one"},
		{"rest not last", []string{"/a/{x...}/b"}, "must be the last"},
		{"empty segment", []string{"/a//b"}, "empty segment"},
		{"too long", []string{"/" + strings.Repeat("a", 600)}, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRoutes(tt.templates)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewRoutes(%q) error = %v, want one containing %q", tt.templates, err, tt.want)
			}
		})
	}
}

func TestPatternTemplate(t *testing.T) {
	tests := []struct{ pattern, want string }{
		{"GET /api/v2/users/{id}", "api/v2/users/{id}"},
		{"/api/v2/users/{id}", "api/v2/users/{id}"},
		{"POST example.com/api/v2/users", "api/v2/users"},
		{"example.com/api/v2/users", "api/v2/users"},
		{"GET  /spaced", "spaced"},
		{"/static/", "static/"},
		{"/files/{path...}", "files/{path...}"},
		{"/api/{$}", "api/"},
		{"GET /{$}", "/"},
		{"/", ""},
		{"GET /", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := PatternTemplate(tt.pattern); got != tt.want {
			t.Errorf("PatternTemplate(%q) = %q, want %q", tt.pattern, got, tt.want)
		}
	}
}

func TestParseRoutes(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		path  string
		want  string
		count int
	}{
		{
			name: "OpenAPI 3 YAML with a server path",
			doc: `openapi: 3.0.3
info: {title: t, version: "1"}
servers:
  - url: https://api.example.com/api/v2
paths:
  /users/{userId}:
    get: {}
  /users:
    post: {}
  x-extension: {}
`,
			path: "/api/v2/users/9", want: "api/v2/users/{userId}", count: 2,
		},
		{
			name: "OpenAPI 3 with servers that differ",
			doc: `openapi: 3.1.0
servers: [{url: /v1}, {url: /v2}]
paths:
  /users/{userId}: {}
`,
			path: "/users/9", want: "users/{userId}", count: 1,
		},
		{
			name: "Swagger 2 JSON with a base path",
			doc:  `{"swagger": "2.0", "basePath": "/api/v2/", "paths": {"/users/{userId}": {"get": {}}, "/users/me": {}}}`,
			path: "/api/v2/users/me", want: "api/v2/users/me", count: 2,
		},
		{
			name: "list",
			doc:  "# the public API\n/api/v2/users/{userId}\n\n  /api/v2/users/{userId}/roles  \napi/v2/health\n",
			path: "/api/v2/users/1/roles", want: "api/v2/users/{userId}/roles", count: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "routes")
			if err := os.WriteFile(file, []byte(tt.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			rt, err := LoadRoutes(file)
			if err != nil {
				t.Fatalf("LoadRoutes: %v", err)
			}
			if rt.Len() != tt.count {
				t.Errorf("Len() = %d, want %d", rt.Len(), tt.count)
			}
			if got, _ := rt.Match(tt.path); got != tt.want {
				t.Errorf("Match(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}

func TestParseRoutesErrors(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"empty list", "# nothing\n", "no templates"},
		{"no paths", "openapi: 3.0.0\ninfo: {}\n", "no paths"},
		{"no version", `{"paths": {"/a": {}}}`, "not an OpenAPI document"},
		{"bad YAML", "openapi: [\n", "parse OpenAPI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRoutes([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseRoutes error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// FuzzRoutes builds tables from arbitrary route files and matches arbitrary
// paths: a match is always one of the table's templates, never the path.
func FuzzRoutes(f *testing.F) {
	f.Add("/a/{x}\n/a/b\n/c/{p...}\n", "/a/b")
	f.Add("openapi: 3.0.0\npaths:\n  /u/{id}: {}\n", "/u/1")
	f.Add(`{"swagger":"2.0","basePath":"/v","paths":{"/f/{n}.json":{}}}`, "/v/f/x.json")
	f.Fuzz(func(t *testing.T, doc, path string) {
		rt, err := ParseRoutes([]byte(doc))
		if err != nil {
			return
		}
		got, ok := rt.Match(path)
		if ok != (got != "") {
			t.Fatalf("Match(%q) = %q, %v", path, got, ok)
		}
		if ok && !strings.Contains(doc, strings.TrimPrefix(strings.TrimSuffix(lastSegment(got), "/"), "/")) {
			t.Errorf("Match(%q) = %q, not a template of the document", path, got)
		}
	})
}

func lastSegment(s string) string { return s[strings.LastIndexByte(s, '/')+1:] }

func BenchmarkRoutesMatch(b *testing.B) {
	rt, err := NewRoutes([]string{
		"/api/v2/users/{userId}", "/api/v2/users/me", "/api/v2/users/{userId}/roles",
		"/api/v2/oauth/clients/{clientId}/usage/query/results/{executionId}",
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := rt.Match("/api/v2/oauth/clients/abc/usage/query/results/def"); !ok {
			b.Fatal("no match")
		}
	}
}

// TestRoutesManyLiterals crosses the number of literal children kept in a
// slice, so that both lookups are used.
func TestRoutesManyLiterals(t *testing.T) {
	var templates []string
	for i := range 3 * maxFew {
		templates = append(templates, "/r/lit"+strconv.Itoa(i)+"/{id}")
	}
	templates = append(templates, "/r/{other}/{id}")
	rt, err := NewRoutes(templates)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 * maxFew {
		path := "/r/lit" + strconv.Itoa(i) + "/9"
		if got, want := mustMatch(rt, path), "r/lit"+strconv.Itoa(i)+"/{id}"; got != want {
			t.Errorf("Match(%q) = %q, want %q", path, got, want)
		}
	}
	if got, want := mustMatch(rt, "/r/zzz/9"), "r/{other}/{id}"; got != want {
		t.Errorf("Match(/r/zzz/9) = %q, want %q", got, want)
	}
}

func mustMatch(rt *Routes, path string) string {
	t, _ := rt.Match(path)
	return t
}
