package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/client"
)

func (c *cli) orgsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "orgs",
		Short: "Create and show organizations",
		Example: `  apiusage orgs create Acme
  apiusage orgs create Acme --save-profile acme
  apiusage orgs show ORGANIZATION_ID`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return usageError{errors.New("orgs needs a subcommand: create or show")}
		},
	}
	c.addConnFlags(cmd)
	cmd.AddCommand(c.orgsCreateCommand(), c.orgsShowCommand())
	return cmd
}

func (c *cli) orgsCreateCommand() *cobra.Command {
	var output, saveProfile string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an organization and its first client (needs platform:organization:add)",
		Long: `Create an organization and its first client, which holds every
organization-level permission. The client's secret is shown only now: keep
it, or save it at once as a profile with --save-profile.`,
		Example: `  apiusage orgs create Acme
  apiusage orgs create Acme --save-profile acme -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, cl, err := c.prepare(output, outputTable, outputJSON)
			if err != nil {
				return err
			}
			org, err := cl.CreateOrganization(cmd.Context(), client.OrganizationCreate{Name: args[0]})
			if err != nil {
				return serverError("create organization", err)
			}
			if saveProfile != "" {
				pf, err := loadProfiles(c.getenv)
				if err != nil {
					return err
				}
				pf.Profiles[saveProfile] = profile{URL: cl.BaseURL(), ClientID: org.AdminClient.ID, ClientSecret: org.AdminClient.Secret}
				if err := pf.save(); err != nil {
					return err
				}
				fmt.Fprintf(c.stderr, "Saved the admin client as profile %q in %s\n", saveProfile, pf.path)
			}
			if format == outputJSON {
				return writeJSON(c.stdout, org)
			}
			return writeFields(c.stdout, [][2]string{
				{"Organization", org.ID},
				{"Name", org.Name},
				{"Admin client", org.AdminClient.ID},
				{"Client secret", org.AdminClient.Secret + "  (shown only now)"},
				{"Permissions", strings.Join(org.AdminClient.Permissions, " ")},
			})
		},
	}
	c.outputFlag(cmd, &output, outputTable, outputJSON)
	cmd.Flags().StringVar(&saveProfile, "save-profile", "", "save the new admin client as a profile with this name")
	return cmd
}

func (c *cli) orgsShowCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "show ORGANIZATION_ID",
		Short:   "Show an organization",
		Example: `  apiusage orgs show ORGANIZATION_ID -o json`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, cl, err := c.prepare(output, outputTable, outputJSON)
			if err != nil {
				return err
			}
			org, err := cl.GetOrganization(cmd.Context(), args[0])
			if err != nil {
				return serverError("show organization", err)
			}
			if format == outputJSON {
				return writeJSON(c.stdout, org)
			}
			return writeFields(c.stdout, [][2]string{
				{"Organization", org.ID},
				{"Name", org.Name},
				{"Created", formatTime(org.DateCreated)},
			})
		},
	}
	c.outputFlag(cmd, &output, outputTable, outputJSON)
	return cmd
}

func (c *cli) clientsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "clients",
		Short: "Manage the OAuth clients of the caller's organization",
		Example: `  apiusage clients list
  apiusage clients create --name "Billing app" --permissions usage:organization:view,usage:event:add
  apiusage clients show CLIENT_ID
  apiusage clients update CLIENT_ID --name "Billing service"
  apiusage clients rotate-secret CLIENT_ID
  apiusage clients delete CLIENT_ID`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return usageError{errors.New("clients needs a subcommand: list, create, show, update, delete or rotate-secret")}
		},
	}
	c.addConnFlags(cmd)
	cmd.AddCommand(c.clientsListCommand(), c.clientsCreateCommand(), c.clientsShowCommand(),
		c.clientsUpdateCommand(), c.clientsDeleteCommand(), c.clientsRotateCommand())
	return cmd
}

func (c *cli) clientsListCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the clients of the caller's organization",
		Example: "  apiusage clients list\n  apiusage clients list -o json | jq -r '.[].id'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, cl, err := c.prepare(output, outputTable, outputJSON)
			if err != nil {
				return err
			}
			clients := []client.OAuthClient{}
			for oc, err := range cl.AllClients(cmd.Context(), 100) {
				if err != nil {
					return serverError("list clients", err)
				}
				clients = append(clients, oc)
			}
			if format == outputJSON {
				return writeJSON(c.stdout, clients)
			}
			rows := make([][]string, len(clients))
			for i, oc := range clients {
				rows[i] = []string{oc.ID, oc.Name, strings.Join(oc.Permissions, ",")}
			}
			return writeTable(c.stdout, []string{"ID", "NAME", "PERMISSIONS"}, nil, rows)
		},
	}
	c.outputFlag(cmd, &output, outputTable, outputJSON)
	return cmd
}

// clientFlags are the editable fields of a client.
type clientFlags struct {
	name, description string
	permissions       []string
}

func (f *clientFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.name, "name", "", "the client's name")
	fl.StringVar(&f.description, "description", "", "the client's description")
	fl.StringSliceVar(&f.permissions, "permissions", nil, "permissions, comma-separated: "+strings.Join(apiusage.OrganizationPermissions, ", "))
	_ = cmd.RegisterFlagCompletionFunc("permissions", cobra.FixedCompletions(apiusage.PlatformPermissions, cobra.ShellCompDirectiveNoFileComp))
}

func (c *cli) clientsCreateCommand() *cobra.Command {
	var (
		f      clientFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a client (its secret is shown only now)",
		Example: `  apiusage clients create --name "Billing app" --permissions usage:organization:view
  apiusage clients create --name ingest --permissions usage:event:add -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.name == "" {
				return usageError{errors.New("--name is required")}
			}
			if len(f.permissions) == 0 {
				return usageError{errors.New("--permissions is required")}
			}
			format, cl, err := c.prepare(output, outputTable, outputJSON)
			if err != nil {
				return err
			}
			created, err := cl.CreateClient(cmd.Context(), client.ClientCreate{Name: f.name, Description: f.description, Permissions: f.permissions})
			if err != nil {
				return serverError("create client", err)
			}
			return writeClient(c.stdout, format, created.OAuthClient, created.Secret)
		},
	}
	f.add(cmd)
	c.outputFlag(cmd, &output, outputTable, outputJSON)
	return cmd
}

func (c *cli) clientsShowCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "show CLIENT_ID",
		Short:   "Show a client",
		Example: "  apiusage clients show CLIENT_ID\n  apiusage clients show CLIENT_ID -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, cl, err := c.prepare(output, outputTable, outputJSON)
			if err != nil {
				return err
			}
			oc, err := cl.GetClient(cmd.Context(), args[0])
			if err != nil {
				return serverError("show client", err)
			}
			return writeClient(c.stdout, format, *oc, "")
		},
	}
	c.outputFlag(cmd, &output, outputTable, outputJSON)
	return cmd
}

func (c *cli) clientsUpdateCommand() *cobra.Command {
	var (
		f      clientFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "update CLIENT_ID",
		Short: "Change a client's name, description or permissions",
		Long: `Change a client's name, description or permissions. Fields whose flag is
not given keep their value; --permissions replaces the whole list.`,
		Example: `  apiusage clients update CLIENT_ID --name "Billing service"
  apiusage clients update CLIENT_ID --permissions usage:organization:view,usage:client:view`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			if !fl.Changed("name") && !fl.Changed("description") && !fl.Changed("permissions") {
				return usageError{errors.New("nothing to change: give --name, --description or --permissions")}
			}
			format, cl, err := c.prepare(output, outputTable, outputJSON)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			// The API replaces all three fields: start from the current ones.
			cur, err := cl.GetClient(ctx, args[0])
			if err != nil {
				return serverError("update client", err)
			}
			up := client.ClientUpdate{Name: cur.Name, Description: cur.Description, Permissions: cur.Permissions}
			if fl.Changed("name") {
				up.Name = f.name
			}
			if fl.Changed("description") {
				up.Description = f.description
			}
			if fl.Changed("permissions") {
				up.Permissions = f.permissions
			}
			oc, err := cl.UpdateClient(ctx, args[0], up)
			if err != nil {
				return serverError("update client", err)
			}
			return writeClient(c.stdout, format, *oc, "")
		},
	}
	f.add(cmd)
	c.outputFlag(cmd, &output, outputTable, outputJSON)
	return cmd
}

func (c *cli) clientsDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "delete CLIENT_ID",
		Short:   "Delete a client; its tokens stop working at once",
		Example: "  apiusage clients delete CLIENT_ID",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			if err := cl.DeleteClient(cmd.Context(), args[0]); err != nil {
				return serverError("delete client", err)
			}
			fmt.Fprintf(c.stdout, "Deleted client %s\n", args[0])
			return nil
		},
	}
}

func (c *cli) clientsRotateCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "rotate-secret CLIENT_ID",
		Short: "Give a client a new secret; the old one stops working",
		Example: `  apiusage clients rotate-secret CLIENT_ID
  apiusage clients rotate-secret CLIENT_ID -o json | jq -r .secret`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, cl, err := c.prepare(output, outputTable, outputJSON)
			if err != nil {
				return err
			}
			rotated, err := cl.RotateClientSecret(cmd.Context(), args[0])
			if err != nil {
				return serverError("rotate client secret", err)
			}
			if rotated.ID == "" {
				rotated.ID = args[0]
			}
			if format == outputJSON {
				return writeJSON(c.stdout, rotated)
			}
			return writeFields(c.stdout, [][2]string{
				{"Client", rotated.ID},
				{"Client secret", rotated.Secret + "  (shown only now)"},
			})
		},
	}
	c.outputFlag(cmd, &output, outputTable, outputJSON)
	return cmd
}

// writeClient writes a client, and its secret when there is one.
func writeClient(w io.Writer, format string, oc client.OAuthClient, secret string) error {
	if format == outputJSON {
		if secret != "" {
			return writeJSON(w, client.CreatedClient{OAuthClient: oc, Secret: secret})
		}
		return writeJSON(w, oc)
	}
	fields := [][2]string{
		{"Client", oc.ID},
		{"Name", oc.Name},
		{"Description", oc.Description},
		{"Organization", oc.OrganizationID},
		{"Permissions", strings.Join(oc.Permissions, " ")},
		{"Created", formatTime(oc.DateCreated)},
	}
	if secret != "" {
		fields = append(fields, [2]string{"Client secret", secret + "  (shown only now)"})
	}
	return writeFields(w, fields)
}

// writeFields writes name/value lines with the values aligned.
func writeFields(w io.Writer, fields [][2]string) error {
	width := 0
	for _, f := range fields {
		width = max(width, len(f[0])+1)
	}
	var b strings.Builder
	for _, f := range fields {
		fmt.Fprintf(&b, "%-*s  %s\n", width, f[0]+":", f[1])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
