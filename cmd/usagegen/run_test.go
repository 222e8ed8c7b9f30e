package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunWritesEventsAndClients(t *testing.T) {
	dir := t.TempDir()
	out, clients := filepath.Join(dir, "events.ndjson"), filepath.Join(dir, "clients.ndjson")
	var stdout, stderr bytes.Buffer
	args := []string{"usagegen", "--seed", "3", "--events", "500", "--days", "2", "--end", "2025-01-01",
		"--orgs", "2", "--clients", "5", "--users", "10", "--templates", "7", "--out", out, "--clients-out", clients}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v; stderr %s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "500 events") {
		t.Errorf("stderr %q, want a report of 500 events", stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte("\n")); n != 500 {
		t.Fatalf("wrote %d lines, want 500", n)
	}
	if !bytes.HasPrefix(data, []byte(`{"timestamp":"2024-12-30T`)) {
		t.Errorf("first event %.60s, want one on 2024-12-30", data)
	}

	f, err := os.Open(clients)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var c struct{ ID, Name, OrganizationID string }
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil || c.ID == "" || c.Name == "" || c.OrganizationID == "" {
			t.Fatalf("client line %q: %v", sc.Text(), err)
		}
		ids[c.ID] = true
	}
	if len(ids) != 5 {
		t.Fatalf("clients file holds %d clients, want 5", len(ids))
	}
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var e struct{ ClientID string }
		json.Unmarshal(line, &e)
		if !ids[e.ClientID] {
			t.Fatalf("event of client %q, not in the clients file", e.ClientID)
		}
	}
}

func TestRunToStdoutIsDeterministic(t *testing.T) {
	gen := func() string {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), []string{"usagegen", "--events", "200", "--days", "1", "--quiet"}, &stdout, &stderr); err != nil {
			t.Fatal(err)
		}
		if stderr.Len() != 0 {
			t.Errorf("--quiet wrote %q", stderr.String())
		}
		return stdout.String()
	}
	if a, b := gen(), gen(); a != b || a == "" {
		t.Fatalf("two runs differ or are empty (%d and %d bytes)", len(a), len(b))
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"usagegen", "--end", "2025-13-01"},
		{"usagegen", "--events", "-5"},
		{"usagegen", "--clients", "3", "--orgs", "5"},
		{"usagegen", "extra"},
	} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), args, &stdout, &stderr); err == nil {
			t.Errorf("run(%q) succeeded, want an error", args)
		}
		if stdout.Len() != 0 {
			t.Errorf("run(%q) wrote %d bytes of events", args, stdout.Len())
		}
	}
}
