package main

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/client"
)

func (c *cli) queryCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "query",
		Short: "Ask the Usage API a question and print the answer",
		Long: `Ask the Usage API a question: usage of the organization, of one OAuth
client, a simple search, or a client's daily summary. Each command starts an
execution, waits for it (with a spinner on a terminal) and prints the rows as
a table, CSV or JSON. With --no-wait it prints the execution id instead.

Intervals are ISO-8601 (2026-01-01/2026-02-01, 2026-01/P1M, ...) or, with
--last, a span ending now: 12h, 7d, 2w.`,
		Example: `  apiusage query org --last 7d --granularity day
  apiusage query client CLIENT_ID --interval 2026-01/2026-02 --group-by templateUri
  apiusage query search --last 30d --http-methods GET,POST -o csv
  apiusage query summary CLIENT_ID --days 14`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("query needs a subcommand: org, client, search or summary")}
		},
	}
	c.addConnFlags(cmd)
	cmd.AddCommand(c.queryOrgCommand(), c.queryClientCommand(), c.querySearchCommand(), c.querySummaryCommand())
	return cmd
}

// intervalFlags are --interval and --last.
type intervalFlags struct {
	interval, last string
}

func (f *intervalFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.interval, "interval", "", "ISO-8601 interval, e.g. 2026-01-01/2026-02-01 or P7D/2026-02-01")
	cmd.Flags().StringVar(&f.last, "last", "", "interval ending now, e.g. 12h, 7d, 2w (instead of --interval)")
}

// value returns the interval the flags give.
func (f *intervalFlags) value(now time.Time) (string, error) {
	switch {
	case f.last != "" && f.interval != "":
		return "", usageError{errors.New("--interval and --last exclude each other")}
	case f.last != "":
		d, err := parseLast(f.last)
		if err != nil {
			return "", usageError{err}
		}
		end := now.UTC().Truncate(time.Second)
		return end.Add(-d).Format(time.RFC3339) + "/" + end.Format(time.RFC3339), nil
	case f.interval != "":
		return f.interval, nil
	}
	return "", usageError{errors.New("--interval or --last is required")}
}

// parseLast parses a span like 90m, 12h, 7d or 2w.
func parseLast(s string) (time.Duration, error) {
	bad := fmt.Errorf("--last %q: want a whole number and a unit: m, h, d or w (e.g. 7d)", s)
	if len(s) < 2 {
		return 0, bad
	}
	n, err := strconv.ParseUint(s[:len(s)-1], 10, 32)
	if err != nil || n == 0 {
		return 0, bad
	}
	unit := map[byte]time.Duration{'m': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[s[len(s)-1]]
	if unit == 0 {
		return 0, bad
	}
	// Past 200 years an interval stops making sense; the bound also keeps
	// the multiplication from overflowing.
	if n > uint64(200*366*24*time.Hour/unit) {
		return 0, bad
	}
	return time.Duration(n) * unit, nil
}

// queryFlags are the flags of org and client queries.
type queryFlags struct {
	intervalFlags
	granularity string
	groupBy     []string
	metrics     []string
	output      string
	noWait      bool
}

func (c *cli) addQueryFlags(cmd *cobra.Command, f *queryFlags, dims []apiusage.Dimension) {
	f.intervalFlags.add(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.granularity, "granularity", "", "bucket size: Day, Week or Month (default one bucket for the whole interval)")
	fl.StringSliceVar(&f.groupBy, "group-by", nil, "dimensions to group by: "+joinEnum(dims)+" (default OAuthClientId)")
	fl.StringSliceVar(&f.metrics, "metrics", nil, "metrics to return: "+joinEnum(apiusage.AllMetrics)+" (default all)")
	fl.BoolVar(&f.noWait, "no-wait", false, "print the execution id and exit without waiting for the result")
	c.outputFlag(cmd, &f.output, outputTable, outputCSV, outputJSON)
	_ = cmd.RegisterFlagCompletionFunc("granularity", cobra.FixedCompletions([]string{"Day", "Week", "Month"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("group-by", cobra.FixedCompletions(enumStrings(dims), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("metrics", cobra.FixedCompletions(enumStrings(apiusage.AllMetrics), cobra.ShellCompDirectiveNoFileComp))
}

// orgQuery returns the normalized query the flags describe.
func (f *queryFlags) orgQuery(now time.Time) (apiusage.OrgQuery, error) {
	iv, err := f.value(now)
	if err != nil {
		return apiusage.OrgQuery{}, err
	}
	return apiusage.OrgQuery{
		Interval:    iv,
		Granularity: apiusage.Granularity(f.granularity),
		Metrics:     toEnum[apiusage.Metric](f.metrics),
		GroupBy:     toEnum[apiusage.Dimension](f.groupBy),
	}, nil
}

var (
	orgDims    = []apiusage.Dimension{apiusage.DimClient, apiusage.DimOrganization, apiusage.DimUser, apiusage.DimTemplateURI, apiusage.DimMethod}
	clientDims = []apiusage.Dimension{apiusage.DimClient, apiusage.DimOrganization, apiusage.DimTemplateURI, apiusage.DimMethod}
)

func (c *cli) queryOrgCommand() *cobra.Command {
	var f queryFlags
	cmd := &cobra.Command{
		Use:   "org",
		Short: "Usage within the caller's organization",
		Example: `  apiusage query org --last 7d
  apiusage query org --interval 2026-01-01/2026-02-01 --granularity Day --group-by OAuthClientId,HttpMethod
  apiusage query org --last 30d --metrics Requests,Status429 -o csv > usage.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := f.orgQuery(c.now())
			if err != nil {
				return err
			}
			q, _, err = q.Normalize()
			if err != nil {
				return usageError{err}
			}
			format, cl, err := c.prepare(f.output, outputTable, outputCSV, outputJSON)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if f.noWait {
				x, err := cl.PostUsageQuery(ctx, q)
				if err != nil {
					return serverError("query org", err)
				}
				fmt.Fprintln(c.stdout, x.ExecutionID)
				return nil
			}
			res, err := waitFor(ctx, c, func(ctx context.Context) (*client.QueryResult, error) {
				return cl.QueryOrganization(ctx, q)
			})
			if err != nil {
				return serverError("query org", err)
			}
			return c.writeRows(format, queryColumns(q), rowsOf(res))
		},
	}
	c.addQueryFlags(cmd, &f, orgDims)
	return cmd
}

func (c *cli) queryClientCommand() *cobra.Command {
	var f queryFlags
	cmd := &cobra.Command{
		Use:   "client CLIENT_ID",
		Short: "Usage of one OAuth client of the caller's organization",
		Example: `  apiusage query client CLIENT_ID --last 7d --granularity Day
  apiusage query client CLIENT_ID --interval 2026-01/2026-02 --group-by TemplateUri,HttpMethod -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			oq, err := f.orgQuery(c.now())
			if err != nil {
				return err
			}
			q, _, err := apiusage.ClientQuery(oq).Normalize()
			if err != nil {
				return usageError{err}
			}
			format, cl, err := c.prepare(f.output, outputTable, outputCSV, outputJSON)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if f.noWait {
				x, err := cl.PostOauthClientUsageQuery(ctx, args[0], q)
				if err != nil {
					return serverError("query client", err)
				}
				fmt.Fprintln(c.stdout, x.ExecutionID)
				return nil
			}
			res, err := waitFor(ctx, c, func(ctx context.Context) (*client.QueryResult, error) {
				return cl.QueryClient(ctx, args[0], q)
			})
			if err != nil {
				return serverError("query client", err)
			}
			return c.writeRows(format, queryColumns(apiusage.OrgQuery(q)), rowsOf(res))
		},
	}
	c.addQueryFlags(cmd, &f, clientDims)
	return cmd
}

func (c *cli) querySummaryCommand() *cobra.Command {
	var (
		days   int
		output string
		noWait bool
	)
	cmd := &cobra.Command{
		Use:   "summary CLIENT_ID",
		Short: "A client's usage over the last days, one row a day",
		Example: `  apiusage query summary CLIENT_ID
  apiusage query summary CLIENT_ID --days 30 -o csv`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if days < 1 || days > 366 {
				return usageError{fmt.Errorf("--days must be from 1 to 366, got %d", days)}
			}
			format, cl, err := c.prepare(output, outputTable, outputCSV, outputJSON)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if noWait {
				x, err := cl.GetOauthClientUsageSummary(ctx, args[0], days)
				if err != nil {
					return serverError("query summary", err)
				}
				fmt.Fprintln(c.stdout, x.ExecutionID)
				return nil
			}
			res, err := waitFor(ctx, c, func(ctx context.Context) (*client.QueryResult, error) {
				return cl.ClientSummary(ctx, args[0], days)
			})
			if err != nil {
				return serverError("query summary", err)
			}
			cols := queryColumns(apiusage.OrgQuery{
				Granularity: apiusage.GranularityDay,
				GroupBy:     []apiusage.Dimension{apiusage.DimClient},
				Metrics:     apiusage.AllMetrics,
			})
			return c.writeRows(format, cols, rowsOf(res))
		},
	}
	c.addConnFlags(cmd)
	cmd.Flags().IntVar(&days, "days", 7, "number of days before today, from 1 to 366")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "print the execution id and exit without waiting for the result")
	c.outputFlag(cmd, &output, outputTable, outputCSV, outputJSON)
	return cmd
}

func (c *cli) querySearchCommand() *cobra.Command {
	var (
		f        intervalFlags
		metrics  []string
		names    []string
		methods  []string
		uris     []string
		pageSize int
		output   string
		noWait   bool
	)
	cmd := &cobra.Command{
		Use:   "search",
		Short: "Rows of (day, client, method, template URI) of the caller's organization",
		Long: `Run a simple search: one row per day, client name, HTTP method and template
URI that had requests, filtered by client names, methods and template URIs
(OR within a flag, AND across flags). Every page of the result is read.`,
		Example: `  apiusage query search --last 7d
  apiusage query search --interval 2026-01-01/2026-01-08 --client-names "Billing app" --http-methods GET,POST
  apiusage query search --last 30d --metrics Date,TemplateUri,Status429 -o csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			iv, err := f.value(c.now())
			if err != nil {
				return err
			}
			s, _, err := apiusage.SimpleSearch{
				Interval:         iv,
				Metrics:          toEnum[apiusage.Column](metrics),
				OAuthClientNames: names,
				HTTPMethods:      methods,
				TemplateURIs:     uris,
			}.Normalize()
			if err != nil {
				return usageError{err}
			}
			if pageSize < 1 || pageSize > client.MaxPageSize {
				return usageError{fmt.Errorf("--page-size must be from 1 to %d, got %d", client.MaxPageSize, pageSize)}
			}
			format, cl, err := c.prepare(output, outputTable, outputCSV, outputJSON)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if noWait {
				x, err := cl.PostUsageSimplesearch(ctx, s)
				if err != nil {
					return serverError("query search", err)
				}
				fmt.Fprintln(c.stdout, x.ExecutionID)
				return nil
			}
			// The spinner runs until the first row (or the end) arrives.
			sp := c.startSpinner(ctx)
			rows := func(yield func(client.UsageRow, error) bool) {
				for row, err := range cl.SearchRows(ctx, s, pageSize) {
					sp.stop()
					if err != nil {
						err = serverError("query search", err)
					}
					if !yield(row, err) {
						return
					}
				}
				sp.stop()
			}
			return c.writeRows(format, searchColumns(s), rows)
		},
	}
	c.addConnFlags(cmd)
	f.add(cmd)
	fl := cmd.Flags()
	fl.StringSliceVar(&metrics, "metrics", nil, "columns to return: "+joinEnum(apiusage.AllColumns)+" (default all)")
	fl.StringSliceVar(&names, "client-names", nil, "keep only requests of clients with these names")
	fl.StringSliceVar(&methods, "http-methods", nil, "keep only these HTTP methods")
	fl.StringSliceVar(&uris, "template-uris", nil, "keep only these template URIs")
	fl.IntVar(&pageSize, "page-size", client.MaxPageSize, "rows read per page")
	fl.BoolVar(&noWait, "no-wait", false, "print the execution id and exit without waiting for the result")
	c.outputFlag(cmd, &output, outputTable, outputCSV, outputJSON)
	_ = cmd.RegisterFlagCompletionFunc("metrics", cobra.FixedCompletions(enumStrings(apiusage.AllColumns), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("http-methods", cobra.FixedCompletions(apiusage.HTTPMethods, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// waitFor runs wait with a spinner on a terminal.
func waitFor(ctx context.Context, c *cli, wait func(context.Context) (*client.QueryResult, error)) (*client.QueryResult, error) {
	sp := c.startSpinner(ctx)
	defer sp.stop()
	return wait(ctx)
}

// rowsOf yields the rows of a result.
func rowsOf(res *client.QueryResult) iter.Seq2[client.UsageRow, error] {
	return func(yield func(client.UsageRow, error) bool) {
		for _, r := range res.Results {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// writeRows writes rows to stdout in the format.
func (c *cli) writeRows(format string, cols []column, rows iter.Seq2[client.UsageRow, error]) error {
	w := newRowWriter(format, c.stdout, cols)
	for r, err := range rows {
		if err != nil {
			return err
		}
		if err := w.write(r); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	if err := w.close(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func toEnum[T ~string](vals []string) []T {
	out := make([]T, 0, len(vals))
	for _, v := range vals {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, T(v))
		}
	}
	return out
}

func enumStrings[T ~string](vals []T) []string {
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = string(v)
	}
	return out
}

func joinEnum[T ~string](vals []T) string { return strings.Join(enumStrings(vals), ", ") }
