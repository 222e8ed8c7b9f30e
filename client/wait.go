package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/apiusage/apiusage"
)

// Polling bounds of WaitForExecution: the first poll comes at once, and the
// waits between polls grow by half from pollMin up to pollMax, so a quick
// execution is seen quickly and a slow one costs few requests.
const (
	pollMin = 100 * time.Millisecond
	pollMax = 2 * time.Second
)

// ExecutionFailedError is returned when an execution ends Failed.
type ExecutionFailedError struct {
	ExecutionID string
	// Result is the failed execution's answer.
	Result *QueryResult
}

// Error implements error.
func (e *ExecutionFailedError) Error() string {
	return "execution " + e.ExecutionID + " failed"
}

// WaitForExecution polls the results of an execution until it is no longer
// Running, and returns them (the first page, for a simple search). Polls back
// off from 100ms to 2s, never sooner than a Retry-After the server sends,
// and a 429 only delays the next poll. It returns an *ExecutionFailedError
// when the execution failed, and ctx's error when ctx is done first.
func (c *Client) WaitForExecution(ctx context.Context, x *ExecutionResult) (*QueryResult, error) {
	if x == nil {
		return nil, errors.New("wait for execution: nil execution")
	}
	path, query, err := c.resultsPath(x.ResultsURI)
	if err != nil {
		return nil, fmt.Errorf("wait for execution %s: %w", x.ExecutionID, err)
	}
	return c.poll(ctx, x.ExecutionID, func(ctx context.Context) (*QueryResult, time.Duration, error) {
		return c.results(ctx, path, query)
	})
}

// poll calls fetch until the execution is no longer Running.
func (c *Client) poll(ctx context.Context, id string, fetch func(context.Context) (*QueryResult, time.Duration, error)) (*QueryResult, error) {
	delay := pollMin
	for {
		res, retryAfter, err := fetch(ctx)
		if err != nil {
			var apiErr *Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests {
				return nil, err
			}
			// Polling is safe to repeat: a 429 only means "later".
			retryAfter = apiErr.RetryAfter
		} else {
			switch res.QueryStatus {
			case apiusage.StatusComplete:
				return res, nil
			case apiusage.StatusFailed:
				return res, &ExecutionFailedError{ExecutionID: id, Result: res}
			case apiusage.StatusRunning:
			default:
				return nil, fmt.Errorf("execution %s: unknown queryStatus %q", id, res.QueryStatus)
			}
		}
		if err := sleepCtx(ctx, max(delay, retryAfter)); err != nil {
			return nil, fmt.Errorf("wait for execution %s: %w", id, err)
		}
		delay = min(delay*3/2, pollMax)
	}
}

// resultsPath checks a resultsUri and splits it into a path below the base
// URL and a query. Only a path is followed, never a URL of another host: the
// request carries the caller's token.
func (c *Client) resultsPath(uri string) (string, url.Values, error) {
	if uri == "" {
		return "", nil, errors.New("no resultsUri")
	}
	u, err := url.Parse(uri)
	if err != nil {
		return "", nil, fmt.Errorf("resultsUri: %w", err)
	}
	path := u.EscapedPath()
	if u.Scheme != "" || u.Host != "" {
		if u.Scheme != c.base.Scheme || u.Host != c.base.Host || u.User != nil {
			return "", nil, fmt.Errorf("resultsUri %q: not on %s", uri, c.base.Host)
		}
		path = strings.TrimPrefix(path, c.base.EscapedPath())
	}
	if !strings.HasPrefix(path, "/api/v2/") || strings.Contains(path, "/../") || strings.HasSuffix(path, "/..") {
		return "", nil, fmt.Errorf("resultsUri %q: not a results path", uri)
	}
	return path, u.Query(), nil
}

// QueryOrganization starts an organization query and waits for its result.
// A 429 answer to the start is waited out and the start repeated: it means
// that no execution was started.
func (c *Client) QueryOrganization(ctx context.Context, q apiusage.OrgQuery) (*QueryResult, error) {
	x, err := c.startRetrying(ctx, func() (*ExecutionResult, error) { return c.PostUsageQuery(ctx, q) })
	if err != nil {
		return nil, err
	}
	return c.WaitForExecution(ctx, x)
}

// QueryClient starts a client query and waits for its result, as
// QueryOrganization does.
func (c *Client) QueryClient(ctx context.Context, clientID string, q apiusage.ClientQuery) (*QueryResult, error) {
	x, err := c.startRetrying(ctx, func() (*ExecutionResult, error) { return c.PostOauthClientUsageQuery(ctx, clientID, q) })
	if err != nil {
		return nil, err
	}
	return c.WaitForExecution(ctx, x)
}

// ClientSummary starts a client's summary and waits for its result.
func (c *Client) ClientSummary(ctx context.Context, clientID string, days int) (*QueryResult, error) {
	x, err := c.GetOauthClientUsageSummary(ctx, clientID, days)
	if err != nil {
		return nil, err
	}
	return c.WaitForExecution(ctx, x)
}

// startRetrying calls start until it is not refused with a 429, within the
// retry policy.
func (c *Client) startRetrying(ctx context.Context, start func() (*ExecutionResult, error)) (*ExecutionResult, error) {
	for attempt := 1; ; attempt++ {
		x, err := start()
		var apiErr *Error
		if err == nil || attempt >= c.retry.MaxAttempts || !errors.As(err, &apiErr) ||
			apiErr.StatusCode != http.StatusTooManyRequests || apiErr.RetryAfter > c.retry.MaxRetryAfter {
			return x, err
		}
		if serr := sleepCtx(ctx, max(c.retry.backoff(attempt), apiErr.RetryAfter)); serr != nil {
			return nil, err
		}
	}
}

// SearchRows starts a simple search and yields every row of its results,
// reading them page by page (pageSize rows a page, the server's default when
// zero). Iteration stops at the first error, which is yielded. Each range
// over the sequence starts a new search.
func (c *Client) SearchRows(ctx context.Context, s apiusage.SimpleSearch, pageSize int) iter.Seq2[UsageRow, error] {
	return func(yield func(UsageRow, error) bool) {
		x, err := c.startRetrying(ctx, func() (*ExecutionResult, error) { return c.PostUsageSimplesearch(ctx, s) })
		if err != nil {
			yield(UsageRow{}, err)
			return
		}
		for row, err := range c.SimpleSearchRows(ctx, x.ExecutionID, pageSize) {
			if !yield(row, err) {
				return
			}
		}
	}
}

// SimpleSearchRows waits for a simple search started before and yields every
// row of its results, as SearchRows does.
func (c *Client) SimpleSearchRows(ctx context.Context, executionID string, pageSize int) iter.Seq2[UsageRow, error] {
	return func(yield func(UsageRow, error) bool) {
		page := Page{PageSize: pageSize}
		res, err := c.poll(ctx, executionID, func(ctx context.Context) (*QueryResult, time.Duration, error) {
			return c.results(ctx, "/api/v2/usage/simplesearch/"+escape(executionID)+"/results", page.values())
		})
		for {
			if err != nil {
				yield(UsageRow{}, err)
				return
			}
			for _, row := range res.Results {
				if !yield(row, nil) {
					return
				}
			}
			if res.Cursors == nil || res.Cursors.After == "" {
				return
			}
			if res.Cursors.After == page.After {
				yield(UsageRow{}, fmt.Errorf("simple search %s: the server repeated cursor %q", executionID, page.After))
				return
			}
			page.After = res.Cursors.After
			res, err = c.GetUsageSimplesearchExecutionIdResults(ctx, executionID, page)
			if err == nil && res.QueryStatus != apiusage.StatusComplete {
				err = fmt.Errorf("simple search %s: page after %q is %s", executionID, page.After, res.QueryStatus)
			}
		}
	}
}
