package embedded

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/apiusage/apiusage"
)

var _ apiusage.Directory = (*Directory)(nil)

// Directory is an apiusage.Directory kept in memory and persisted as one JSON
// file, rewritten whole on every change (a temporary file, fsynced, renamed
// into place, the directory fsynced): organizations and clients are few and
// change rarely, so simplicity wins over incremental writes.
//
// Directory is safe for concurrent use.
type Directory struct {
	path string

	mu      sync.RWMutex
	orgs    map[string]apiusage.Organization
	clients map[string]apiusage.Client
}

// directoryFile is the file's layout.
type directoryFile struct {
	Organizations []apiusage.Organization `json:"organizations"`
	Clients       []apiusage.Client       `json:"clients"`
}

// OpenDirectory opens the directory file at path, creating its parent
// directory when needed; a missing file is an empty directory.
func OpenDirectory(path string) (*Directory, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create directory folder: %w", err)
	}
	d := &Directory{path: path, orgs: map[string]apiusage.Organization{}, clients: map[string]apiusage.Client{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read directory: %w", err)
	}
	var f directoryFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("decode directory %s: %w", path, err)
	}
	for _, o := range f.Organizations {
		d.orgs[o.ID] = o
	}
	for _, c := range f.Clients {
		d.clients[c.ID] = c
	}
	return d, nil
}

// CreateOrganization creates org and its first clients, all or nothing. An
// existing organization or client id, or a second platform organization, is
// a conflict. Clients without an organization id get org's.
func (d *Directory) CreateOrganization(ctx context.Context, org apiusage.Organization, clients ...apiusage.Client) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.orgs[org.ID]; ok {
		return apiusage.Errorf(apiusage.CodeConflict, "organization %q exists", org.ID)
	}
	if org.Platform {
		for _, o := range d.orgs {
			if o.Platform {
				return apiusage.Errorf(apiusage.CodeConflict, "a platform organization exists")
			}
		}
	}
	added := map[string]apiusage.Client{}
	for _, c := range clients {
		if c.OrganizationID == "" {
			c.OrganizationID = org.ID
		}
		if c.OrganizationID != org.ID {
			return apiusage.Errorf(apiusage.CodeBadRequest, "client %q belongs to another organization", c.ID)
		}
		if _, ok := d.clients[c.ID]; ok {
			return apiusage.Errorf(apiusage.CodeConflict, "client %q exists", c.ID)
		}
		if _, ok := added[c.ID]; ok {
			return apiusage.Errorf(apiusage.CodeConflict, "client %q given twice", c.ID)
		}
		added[c.ID] = copyClient(c)
	}
	return d.change(func(orgs map[string]apiusage.Organization, cs map[string]apiusage.Client) {
		orgs[org.ID] = org
		for id, c := range added {
			cs[id] = c
		}
	})
}

// Organization returns the organization with the id, or ErrNotFound.
func (d *Directory) Organization(ctx context.Context, id string) (apiusage.Organization, error) {
	if err := ctx.Err(); err != nil {
		return apiusage.Organization{}, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	o, ok := d.orgs[id]
	if !ok {
		return apiusage.Organization{}, apiusage.ErrNotFound
	}
	return o, nil
}

// PlatformOrganization returns the platform organization, or ErrNotFound
// before it exists.
func (d *Directory) PlatformOrganization(ctx context.Context) (apiusage.Organization, error) {
	if err := ctx.Err(); err != nil {
		return apiusage.Organization{}, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, o := range d.orgs {
		if o.Platform {
			return o, nil
		}
	}
	return apiusage.Organization{}, apiusage.ErrNotFound
}

// CreateClient creates c in its organization, which must exist (ErrNotFound
// otherwise); an existing id is a conflict.
func (d *Directory) CreateClient(ctx context.Context, c apiusage.Client) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.orgs[c.OrganizationID]; !ok {
		return apiusage.ErrNotFound
	}
	if _, ok := d.clients[c.ID]; ok {
		return apiusage.Errorf(apiusage.CodeConflict, "client %q exists", c.ID)
	}
	c = copyClient(c)
	return d.change(func(_ map[string]apiusage.Organization, cs map[string]apiusage.Client) { cs[c.ID] = c })
}

// Client returns the client with the id, or ErrNotFound.
func (d *Directory) Client(ctx context.Context, id string) (apiusage.Client, error) {
	if err := ctx.Err(); err != nil {
		return apiusage.Client{}, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	c, ok := d.clients[id]
	if !ok {
		return apiusage.Client{}, apiusage.ErrNotFound
	}
	return copyClient(c), nil
}

// Clients lists an organization's clients by name, then id.
func (d *Directory) Clients(ctx context.Context, organizationID string) ([]apiusage.Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.RLock()
	var out []apiusage.Client
	for _, c := range d.clients {
		if c.OrganizationID == organizationID {
			out = append(out, copyClient(c))
		}
	}
	d.mu.RUnlock()
	slices.SortFunc(out, func(a, b apiusage.Client) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// UpdateClient replaces the stored client with c's id, or returns
// ErrNotFound. A client cannot move to another organization: an empty
// OrganizationID keeps the stored one, a different one is a bad request.
func (d *Directory) UpdateClient(ctx context.Context, c apiusage.Client) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	old, ok := d.clients[c.ID]
	if !ok {
		return apiusage.ErrNotFound
	}
	if c.OrganizationID == "" {
		c.OrganizationID = old.OrganizationID
	}
	if c.OrganizationID != old.OrganizationID {
		return apiusage.Errorf(apiusage.CodeBadRequest, "a client cannot move to another organization")
	}
	c = copyClient(c)
	return d.change(func(_ map[string]apiusage.Organization, cs map[string]apiusage.Client) { cs[c.ID] = c })
}

// DeleteClient deletes the client with the id, or returns ErrNotFound.
func (d *Directory) DeleteClient(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.clients[id]; !ok {
		return apiusage.ErrNotFound
	}
	return d.change(func(_ map[string]apiusage.Organization, cs map[string]apiusage.Client) { delete(cs, id) })
}

// change applies edit to copies of the maps, writes them, and only then
// makes them current: a failed write changes nothing. The caller holds d.mu.
func (d *Directory) change(edit func(map[string]apiusage.Organization, map[string]apiusage.Client)) error {
	orgs, clients := maps.Clone(d.orgs), maps.Clone(d.clients)
	edit(orgs, clients)
	f := directoryFile{Organizations: sortedValues(orgs), Clients: sortedValues(clients)}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode directory: %w", err)
	}
	if err := writeFileAtomic(d.path, data); err != nil {
		return fmt.Errorf("write directory: %w", err)
	}
	d.orgs, d.clients = orgs, clients
	return nil
}

// sortedValues lists a map's values by key, so that the file is stable.
func sortedValues[V any](m map[string]V) []V {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]V, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

func copyClient(c apiusage.Client) apiusage.Client {
	c.Permissions = slices.Clone(c.Permissions)
	c.SecretHash = slices.Clone(c.SecretHash)
	return c
}

// writeFileAtomic replaces path with data so that a crash leaves the old or
// the new content, never a mix.
func writeFileAtomic(path string, data []byte) (err error) {
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}
