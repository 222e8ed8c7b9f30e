package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apiusage/apiusage/embedded"
	"github.com/apiusage/apiusage/server"
	"github.com/prometheus/client_golang/prometheus"
)

// ExampleNew wires a server the way cmd/apiusage does: the embedded
// components, Bootstrap at start, New, and Close after the HTTP server
// has shut down.
func ExampleNew() {
	data, err := os.MkdirTemp("", "apiusage-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(data)
	store, err := embedded.Open(filepath.Join(data, "usage"), embedded.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	dir, err := embedded.OpenDirectory(filepath.Join(data, "directory.json"))
	if err != nil {
		log.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	if _, _, err := server.Bootstrap(ctx, dir, "ops", "a-long-random-secret", 4, time.Now()); err != nil {
		log.Fatal(err)
	}
	srv, err := server.New(server.Config{HashCost: 4}, nil, store, dir, embedded.NewExecutions(nil), key, prometheus.NewRegistry())
	if err != nil {
		log.Fatal(err)
	}
	ts := httptest.NewServer(srv)

	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ := http.NewRequest("POST", ts.URL+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("ops", "a-long-random-secret")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	var token struct {
		TokenType string `json:"token_type"`
		ExpiresIn int    `json:"expires_in"`
	}
	json.NewDecoder(res.Body).Decode(&token)
	res.Body.Close()
	fmt.Println(res.StatusCode, token.TokenType, token.ExpiresIn)

	ts.Close()
	if err := srv.Close(ctx); err != nil {
		log.Fatal(err)
	}
	// Output: 200 bearer 86400
}
