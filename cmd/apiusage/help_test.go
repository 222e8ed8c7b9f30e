package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestEveryCommandHelpHasExamples walks the whole command tree: every
// command's --help shows examples.
func TestEveryCommandHelpHasExamples(t *testing.T) {
	paths := [][]string{{}}
	seen := 0
	for len(paths) > 0 {
		path := paths[0]
		paths = paths[1:]
		var out bytes.Buffer
		args := append(append([]string{"apiusage"}, path...), "--help")
		if err := run(context.Background(), args, func(string) string { return "" }, &out, &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		help := out.String()
		if !strings.Contains(help, "\nExamples:\n") {
			t.Errorf("apiusage %s --help shows no examples:\n%s", strings.Join(path, " "), help)
		}
		seen++
		// Subcommands are listed under "Available Commands:", one a line.
		_, list, ok := strings.Cut(help, "Available Commands:\n")
		if !ok {
			continue
		}
		for _, line := range strings.Split(list, "\n") {
			if !strings.HasPrefix(line, "  ") {
				break
			}
			name := strings.Fields(line)[0]
			if name == "help" {
				continue
			}
			paths = append(paths, append(append([]string(nil), path...), name))
		}
	}
	if seen < 20 {
		t.Fatalf("walked %d commands, want the whole tree (at least 20)", seen)
	}
}

// The debug listener serves the runtime's profiles, and only those.
func TestDebugHandler(t *testing.T) {
	srv := httptest.NewServer(debugHandler())
	defer srv.Close()
	for path, want := range map[string]int{
		"/debug/pprof/":             http.StatusOK,
		"/debug/pprof/cmdline":      http.StatusOK,
		"/debug/pprof/heap":         http.StatusOK,
		"/api/v2/usage/query":       http.StatusNotFound,
		"/debug/pprof/../../oauth/": http.StatusNotFound,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}
