package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/apiusage/apiusage/client"
)

// defaultProfile is the profile used when none is named.
const defaultProfile = "default"

// profile is a saved connection: where the server is and who to be there.
type profile struct {
	URL          string `json:"url"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
}

// profileFile is the content of profiles.json.
type profileFile struct {
	Profiles map[string]profile `json:"profiles"`
	// path is where the file lives.
	path string
}

func (pf *profileFile) names() []string {
	names := make([]string, 0, len(pf.Profiles))
	for n := range pf.Profiles {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// configDir returns the user's configuration directory as
// os.UserConfigDir would, but reading the environment through getenv, so
// that tests (and callers) can point it elsewhere.
func configDir(getenv func(string) string) (string, error) {
	switch runtime.GOOS {
	case "windows":
		if d := getenv("AppData"); d != "" {
			return d, nil
		}
		return "", errors.New("%AppData% is not set")
	case "darwin", "ios":
		if h := getenv("HOME"); h != "" {
			return filepath.Join(h, "Library", "Application Support"), nil
		}
		return "", errors.New("$HOME is not set")
	}
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		if !filepath.IsAbs(d) {
			return "", fmt.Errorf("$XDG_CONFIG_HOME %q is not an absolute path", d)
		}
		return d, nil
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config"), nil
	}
	return "", errors.New("neither $XDG_CONFIG_HOME nor $HOME is set")
}

// profilesPath returns the path of profiles.json.
func profilesPath(getenv func(string) string) (string, error) {
	dir, err := configDir(getenv)
	if err != nil {
		return "", fmt.Errorf("config directory: %w", err)
	}
	return filepath.Join(dir, "apiusage", "profiles.json"), nil
}

// loadProfiles reads profiles.json; a missing file holds no profiles.
func loadProfiles(getenv func(string) string) (*profileFile, error) {
	path, err := profilesPath(getenv)
	if err != nil {
		// Without a configuration directory there are no profiles; flags
		// and environment still work, and login says why it cannot save.
		return &profileFile{Profiles: map[string]profile{}}, nil
	}
	pf := &profileFile{Profiles: map[string]profile{}, path: path}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return pf, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read profiles: %w", err)
	}
	if err := json.Unmarshal(b, pf); err != nil {
		return nil, fmt.Errorf("read profiles %s: %w", path, err)
	}
	if pf.Profiles == nil {
		pf.Profiles = map[string]profile{}
	}
	return pf, nil
}

// save writes the file readable by its owner only, atomically: a crash
// leaves the old file or the new one, never half of one.
func (pf *profileFile) save() error {
	if pf.path == "" {
		return errors.New("save profiles: no config directory ($HOME or $XDG_CONFIG_HOME)")
	}
	if err := os.MkdirAll(filepath.Dir(pf.path), 0o700); err != nil {
		return fmt.Errorf("save profiles: %w", err)
	}
	b, err := json.MarshalIndent(pf, "", "  ")
	if err != nil {
		return fmt.Errorf("save profiles: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(pf.path), ".profiles-*.json")
	if err != nil {
		return fmt.Errorf("save profiles: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	// CreateTemp makes the file 0600 already; Chmod says so where umask or
	// platform differ.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save profiles: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save profiles: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save profiles: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save profiles: %w", err)
	}
	if err := os.Rename(tmp.Name(), pf.path); err != nil {
		return fmt.Errorf("save profiles: %w", err)
	}
	return nil
}

func (c *cli) loginCommand() *cobra.Command {
	var noVerify bool
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Save a server URL and client credentials as a named profile",
		Long: `Save a server URL and OAuth client credentials as a named profile, so that
later commands need no flags. The profile is checked by getting an access
token (skip with --no-verify), then written to profiles.json in the user's
configuration directory ($XDG_CONFIG_HOME/apiusage or ~/.config/apiusage on
Linux), readable by its owner only.

Values come from the flags, else from APIUSAGE_URL, APIUSAGE_CLIENT_ID and
APIUSAGE_CLIENT_SECRET, else from the profile being updated.`,
		Example: `  apiusage login --url http://127.0.0.1:8080 --client-id ID --client-secret SECRET
  apiusage login --profile acme --url https://usage.example.com --client-id ID --client-secret SECRET
  APIUSAGE_CLIENT_SECRET=SECRET apiusage login --url http://127.0.0.1:8080 --client-id ID`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := c.resolve()
			var u usageError
			if errors.As(err, &u) {
				// A new profile is what login is for.
				s, err = c.resolveNew()
			}
			if err != nil {
				return err
			}
			var missing []string
			for _, f := range []struct{ name, v string }{{"--url", s.url}, {"--client-id", s.clientID}, {"--client-secret", s.clientSecret}} {
				if f.v == "" {
					missing = append(missing, f.name)
				}
			}
			if len(missing) > 0 {
				return usageError{fmt.Errorf("missing %s", strings.Join(missing, ", "))}
			}
			cl, err := client.New(s.url, client.WithUserAgent("apiusage-cli"))
			if err != nil {
				return usageError{err}
			}
			if !noVerify {
				if _, err := cl.FetchToken(cmd.Context(), s.clientID, s.clientSecret); err != nil {
					return fmt.Errorf("check credentials at %s: %w", client.LoginURL(cl.BaseURL()), err)
				}
			}
			pf, err := loadProfiles(c.getenv)
			if err != nil {
				return err
			}
			pf.Profiles[s.profile] = profile{URL: cl.BaseURL(), ClientID: s.clientID, ClientSecret: s.clientSecret}
			if err := pf.save(); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "Saved profile %q (%s as client %s) in %s\n", s.profile, cl.BaseURL(), s.clientID, pf.path)
			return nil
		},
	}
	c.addConnFlags(cmd)
	cmd.Flags().BoolVar(&noVerify, "no-verify", false, "save without checking the credentials against the server")
	return cmd
}

// resolveNew resolves settings for a profile that does not exist yet: from
// flags and environment only.
func (c *cli) resolveNew() (settings, error) {
	return settings{
		profile:      c.profileName(),
		url:          firstNonEmpty(c.conn.url, c.getenv(envURL)),
		clientID:     firstNonEmpty(c.conn.clientID, c.getenv(envClientID)),
		clientSecret: firstNonEmpty(c.conn.clientSecret, c.getenv(envClientSecret)),
	}, nil
}
