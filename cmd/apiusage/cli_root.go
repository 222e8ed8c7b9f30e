package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/apiusage/apiusage/client"
)

// cli is what every client-side command shares: the process's environment
// and streams, the clock, and the connection settings from the flags.
type cli struct {
	getenv         func(string) string
	stdout, stderr io.Writer
	now            func() time.Time
	// terminal reports whether w is a terminal: tables by default, spinners
	// and progress bars only there.
	terminal func(w io.Writer) bool

	conn connFlags
}

// connFlags are the connection flags every client command takes. A flag
// wins over its environment variable, which wins over the profile.
type connFlags struct {
	profile      string
	url          string
	clientID     string
	clientSecret string
}

// Environment variables of the client commands.
const (
	envProfile      = "APIUSAGE_PROFILE"
	envURL          = "APIUSAGE_URL"
	envClientID     = "APIUSAGE_CLIENT_ID"
	envClientSecret = "APIUSAGE_CLIENT_SECRET"
)

// cliCommands returns the client-side commands: login, query, orgs, clients
// and ingest.
func cliCommands(getenv func(string) string, stdout, stderr io.Writer) []*cobra.Command {
	c := &cli{getenv: getenv, stdout: stdout, stderr: stderr, now: time.Now, terminal: isTerminal}
	return []*cobra.Command{
		c.loginCommand(),
		c.queryCommand(),
		c.orgsCommand(),
		c.clientsCommand(),
		c.ingestCommand(),
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// addConnFlags adds the connection flags to cmd and its subcommands.
func (c *cli) addConnFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&c.conn.profile, "profile", "", "profile saved by apiusage login (default \"default\") ["+envProfile+"]")
	f.StringVar(&c.conn.url, "url", "", "base URL of the server, e.g. http://127.0.0.1:8080 ["+envURL+"]")
	f.StringVar(&c.conn.clientID, "client-id", "", "OAuth client id ["+envClientID+"]")
	f.StringVar(&c.conn.clientSecret, "client-secret", "", "OAuth client secret ["+envClientSecret+"]")
	_ = cmd.RegisterFlagCompletionFunc("profile", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		pf, err := loadProfiles(c.getenv)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return pf.names(), cobra.ShellCompDirectiveNoFileComp
	})
}

// settings are the resolved connection settings.
type settings struct {
	profile      string
	url          string
	clientID     string
	clientSecret string
}

// profileName returns the profile the command uses.
func (c *cli) profileName() string {
	return firstNonEmpty(c.conn.profile, c.getenv(envProfile), defaultProfile)
}

// resolve merges flags, environment and profile, in that order of
// precedence.
func (c *cli) resolve() (settings, error) {
	s := settings{profile: c.profileName()}
	pf, err := loadProfiles(c.getenv)
	if err != nil {
		return s, err
	}
	p, found := pf.Profiles[s.profile]
	if !found && (c.conn.profile != "" || c.getenv(envProfile) != "") {
		return s, usageError{fmt.Errorf("no profile %q: create it with apiusage login --profile %s", s.profile, s.profile)}
	}
	s.url = firstNonEmpty(c.conn.url, c.getenv(envURL), p.URL)
	s.clientID = firstNonEmpty(c.conn.clientID, c.getenv(envClientID), p.ClientID)
	s.clientSecret = firstNonEmpty(c.conn.clientSecret, c.getenv(envClientSecret), p.ClientSecret)
	return s, nil
}

// client returns an SDK client for the resolved settings.
func (c *cli) client() (*client.Client, error) {
	s, err := c.resolve()
	if err != nil {
		return nil, err
	}
	var missing []string
	if s.url == "" {
		missing = append(missing, "--url")
	}
	if s.clientID == "" {
		missing = append(missing, "--client-id")
	}
	if s.clientSecret == "" {
		missing = append(missing, "--client-secret")
	}
	if len(missing) > 0 {
		return nil, usageError{fmt.Errorf("missing %s: run apiusage login, or pass the flags or their APIUSAGE_* variables", strings.Join(missing, ", "))}
	}
	cl, err := client.New(s.url, client.WithClientCredentials(s.clientID, s.clientSecret),
		client.WithUserAgent("apiusage-cli"))
	if err != nil {
		return nil, usageError{err}
	}
	return cl, nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// Output formats.
const (
	outputTable = "table"
	outputCSV   = "csv"
	outputJSON  = "json"
)

// outputFlag adds --output to cmd, with the formats it supports.
func (c *cli) outputFlag(cmd *cobra.Command, dst *string, formats ...string) {
	cmd.Flags().StringVarP(dst, "output", "o", "", "output format: "+strings.Join(formats, ", ")+" (default table on a terminal, json otherwise)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
}

// outputFormat returns the format to write: the flag's, or table on a
// terminal and JSON otherwise, so that a pipe gets something a program can
// prepare does what every command that calls the server does first: it
// checks the --output flag against the formats the command prints, then
// builds the client from flags, environment and profile.
func (c *cli) prepare(output string, formats ...string) (string, *client.Client, error) {
	format, err := c.outputFormat(output, formats...)
	if err != nil {
		return "", nil, err
	}
	cl, err := c.client()
	if err != nil {
		return "", nil, err
	}
	return format, cl, nil
}

// read.
func (c *cli) outputFormat(flag string, formats ...string) (string, error) {
	if flag == "" {
		if c.terminal(c.stdout) {
			return outputTable, nil
		}
		return outputJSON, nil
	}
	for _, f := range formats {
		if strings.EqualFold(flag, f) {
			return f, nil
		}
	}
	return "", usageError{fmt.Errorf("--output: unknown format %q; want one of %s", flag, strings.Join(formats, ", "))}
}

// serverError adds context to an error of a call to the server. A usage error
// found locally stays one; anything else is a server or network error.
func serverError(what string, err error) error {
	var u usageError
	if errors.As(err, &u) {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}
