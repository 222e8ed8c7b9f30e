package embedded

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

func openDirectory(tb testing.TB, path string) *Directory {
	tb.Helper()
	d, err := OpenDirectory(path)
	if err != nil {
		tb.Fatalf("OpenDirectory(%s): %v", path, err)
	}
	return d
}

func TestDirectory(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "data", "directory.json")
	d := openDirectory(t, path)
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	if _, err := d.PlatformOrganization(ctx); !errors.Is(err, apiusage.ErrNotFound) {
		t.Fatalf("PlatformOrganization before it exists: %v, want ErrNotFound", err)
	}
	platform := apiusage.Organization{ID: "p", Name: "Platform", Platform: true, Created: created}
	admin := apiusage.Client{ID: "admin", Name: "Admin", Permissions: slices.Clone(apiusage.PlatformPermissions), SecretHash: []byte("hash"), Created: created}
	if err := d.CreateOrganization(ctx, platform, admin); err != nil {
		t.Fatal(err)
	}
	acme := apiusage.Organization{ID: "acme", Name: "Acme", Created: created}
	clients := []apiusage.Client{
		{ID: "c2", Name: "Beta", OrganizationID: "acme", Permissions: []string{apiusage.PermUsageClient}},
		{ID: "c1", Name: "Beta", OrganizationID: "acme"},
		{ID: "c3", Name: "Alpha", OrganizationID: "acme"},
	}
	if err := d.CreateOrganization(ctx, acme, clients...); err != nil {
		t.Fatal(err)
	}

	conflicts := []struct {
		name string
		err  error
	}{
		{"organization id taken", d.CreateOrganization(ctx, acme)},
		{"second platform", d.CreateOrganization(ctx, apiusage.Organization{ID: "p2", Platform: true})},
		{"client id taken with a new organization", d.CreateOrganization(ctx, apiusage.Organization{ID: "new"}, apiusage.Client{ID: "c1"})},
		{"client id twice in one call", d.CreateOrganization(ctx, apiusage.Organization{ID: "new"}, apiusage.Client{ID: "x"}, apiusage.Client{ID: "x"})},
		{"client id taken", d.CreateClient(ctx, apiusage.Client{ID: "c1", OrganizationID: "acme"})},
	}
	for _, c := range conflicts {
		if code := apiusage.ErrorCode(c.err); code != apiusage.CodeConflict {
			t.Errorf("%s: error %v, want code %s", c.name, c.err, apiusage.CodeConflict)
		}
	}
	if _, err := d.Organization(ctx, "new"); !errors.Is(err, apiusage.ErrNotFound) {
		t.Errorf("an organization whose creation failed: %v, want ErrNotFound (all or nothing)", err)
	}
	if err := d.CreateClient(ctx, apiusage.Client{ID: "orphan", OrganizationID: "nowhere"}); !errors.Is(err, apiusage.ErrNotFound) {
		t.Errorf("CreateClient in a missing organization: %v, want ErrNotFound", err)
	}

	// Slices are copied on the way in and out.
	admin.Permissions[0] = "changed"
	got, err := d.Client(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if got.Permissions[0] == "changed" {
		t.Fatal("Client shares the Permissions slice given to CreateOrganization")
	}
	got.SecretHash[0] = 'X'
	if again, _ := d.Client(ctx, "admin"); string(again.SecretHash) != "hash" {
		t.Fatalf("SecretHash = %q after changing a returned copy, want %q", again.SecretHash, "hash")
	}

	c1 := clients[1]
	c1.Name, c1.Generation = "Renamed", 2
	c1.OrganizationID = ""
	if err := d.UpdateClient(ctx, c1); err != nil {
		t.Fatal(err)
	}
	moved := c1
	moved.OrganizationID = "p"
	if err := d.UpdateClient(ctx, moved); apiusage.ErrorCode(err) != apiusage.CodeBadRequest {
		t.Errorf("UpdateClient moving a client: %v, want %s", err, apiusage.CodeBadRequest)
	}
	if err := d.UpdateClient(ctx, apiusage.Client{ID: "nobody"}); !errors.Is(err, apiusage.ErrNotFound) {
		t.Errorf("UpdateClient of a missing client: %v, want ErrNotFound", err)
	}
	if err := d.DeleteClient(ctx, "c2"); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteClient(ctx, "c2"); !errors.Is(err, apiusage.ErrNotFound) {
		t.Errorf("DeleteClient twice: %v, want ErrNotFound", err)
	}

	// Everything survives reopening.
	for _, dir := range []*Directory{d, openDirectory(t, path)} {
		list, err := dir.Clients(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range list {
			ids = append(ids, c.ID)
		}
		if want := []string{"c3", "c1"}; !slices.Equal(ids, want) {
			t.Errorf("Clients(acme) = %v, want %v (by name, then id)", ids, want)
		}
		if list[1].Name != "Renamed" || list[1].Generation != 2 || list[1].OrganizationID != "acme" {
			t.Errorf("updated client = %+v, want renamed, generation 2, in acme", list[1])
		}
		p, err := dir.PlatformOrganization(ctx)
		if err != nil || p.ID != "p" || !p.Created.Equal(created) {
			t.Errorf("PlatformOrganization() = %+v, %v; want p created at %v", p, err, created)
		}
		a, err := dir.Client(ctx, "admin")
		if err != nil || string(a.SecretHash) != "hash" || !slices.Equal(a.Permissions, apiusage.PlatformPermissions) {
			t.Errorf("Client(admin) = %+v, %v", a, err)
		}
	}
	if _, err := os.Stat(path + tmpSuffix); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

func TestDirectoryCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "directory.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDirectory(path); err == nil {
		t.Fatal("OpenDirectory of a corrupt file: no error, want one")
	}
}

func TestExecutions(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := NewExecutions(clk.Now)
	t0 := clk.Now()
	x := apiusage.Execution{
		ID: "x1", Kind: apiusage.KindOrgQuery, OrganizationID: "acme", Status: apiusage.StatusComplete,
		Metrics: []apiusage.Metric{apiusage.MetricRequests},
		Created: t0, Expires: t0.Add(time.Hour),
	}
	if err := e.Put(ctx, x); err != nil {
		t.Fatal(err)
	}
	x.Metrics[0] = apiusage.MetricStatus200
	got, err := e.Get(ctx, "x1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Metrics[0] != apiusage.MetricRequests || got.Kind != apiusage.KindOrgQuery || got.OrganizationID != "acme" {
		t.Fatalf("Get = %+v, want the execution as it was put", got)
	}
	if _, err := e.Get(ctx, "nope"); !errors.Is(err, apiusage.ErrNotFound) {
		t.Fatalf("Get of a missing id: %v, want ErrNotFound", err)
	}
	x.Status = apiusage.StatusFailed
	if err := e.Put(ctx, x); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.Get(ctx, "x1"); got.Status != apiusage.StatusFailed {
		t.Fatalf("Status after a second Put = %s, want %s", got.Status, apiusage.StatusFailed)
	}

	clk.Set(t0.Add(time.Hour - time.Nanosecond))
	if _, err := e.Get(ctx, "x1"); err != nil {
		t.Fatalf("Get just before expiry: %v", err)
	}
	clk.Set(t0.Add(time.Hour))
	if _, err := e.Get(ctx, "x1"); !errors.Is(err, apiusage.ErrNotFound) {
		t.Fatalf("Get at expiry: %v, want ErrNotFound", err)
	}

	// Expired executions are freed by later Puts, even if never read.
	for i := range 1000 {
		clk.Set(t0.Add(time.Duration(i) * time.Second))
		y := apiusage.Execution{ID: string(rune('a'+i%26)) + time.Duration(i).String(), Expires: clk.Now().Add(10 * time.Second)}
		if err := e.Put(ctx, y); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.Len(); n > 200 {
		t.Fatalf("executions held = %d with at most 10 live, want expired ones freed", n)
	}
}
