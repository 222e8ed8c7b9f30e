// Package postgres is the PostgreSQL baseline of the benchmark: what a team
// would build instead of apiusage, every request written into a raw events
// table and each Usage API question answered with GROUP BY.
//
// It loads NDJSON with COPY FROM STDIN (converting each line to COPY's text
// format on the fly), and answers an apiusage.Query with the same semantics
// as the embedded store: an event counts when the start of its UTC hour lies
// in the interval, 429 counts in 4xx too, and rows come ordered by
// apiusage.CompareRows (the text columns use the C collation, which compares
// bytes as Go does).
//
// Server starts a private postgres process on loopback, for the benchmark
// and for tests.
package postgres

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/apiusage/apiusage"
)

// Baseline is a raw events table in a PostgreSQL schema.
//
// It is safe for concurrent use once loaded.
type Baseline struct {
	pool   *pgxpool.Pool
	schema string
	names  map[string]string
}

// Open connects to the database at dsn (a pgx connection string) and returns
// the baseline in schema. Sessions run in UTC, which the date buckets rely on.
func Open(ctx context.Context, dsn, schema string) (*Baseline, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres config: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres connect: %w", err)
	}
	return &Baseline{pool: pool, schema: pgx.Identifier{schema}.Sanitize()}, nil
}

// Close closes the connections.
func (b *Baseline) Close() { b.pool.Close() }

// Create drops and creates the schema and its events table, without indexes
// (a bulk load is faster without them; see Index).
func (b *Baseline) Create(ctx context.Context) error {
	stmts := []string{
		"DROP SCHEMA IF EXISTS " + b.schema + " CASCADE",
		"CREATE SCHEMA " + b.schema,
		`CREATE TABLE ` + b.schema + `.events (
			ts timestamptz NOT NULL,
			organization_id text COLLATE "C" NOT NULL,
			client_id text COLLATE "C" NOT NULL,
			client_name text COLLATE "C" NOT NULL,
			user_id text COLLATE "C" NOT NULL,
			template_uri text COLLATE "C" NOT NULL,
			http_method text COLLATE "C" NOT NULL,
			status smallint NOT NULL
		)`,
	}
	for _, s := range stmts {
		if _, err := b.pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("create: %w", err)
		}
	}
	return nil
}

// Load copies the NDJSON events read from r into the table in one COPY,
// which commits (durably, with the server's default synchronous_commit) when
// it returns. It returns the number of rows copied.
func (b *Baseline) Load(ctx context.Context, r io.Reader) (int64, error) {
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	tag, err := conn.Conn().PgConn().CopyFrom(ctx, newCopyReader(r),
		"COPY "+b.schema+".events (ts, organization_id, client_id, client_name, user_id, template_uri, http_method, status) FROM STDIN")
	if err != nil {
		return 0, fmt.Errorf("copy events: %w", err)
	}
	b.names = nil
	return tag.RowsAffected(), nil
}

// Index builds the indexes a team would have for these queries (by
// organization and time, by client and time).
func (b *Baseline) Index(ctx context.Context) error {
	for _, s := range []string{
		"CREATE INDEX ON " + b.schema + ".events (organization_id, ts)",
		"CREATE INDEX ON " + b.schema + ".events (client_id, ts)",
	} {
		if _, err := b.pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("index: %w", err)
		}
	}
	return nil
}

// Vacuum runs VACUUM (ANALYZE) on the table, as a team would after a bulk
// load: it gathers the planner's statistics, sets the hint bits and the
// visibility map (which index-only scans need). It also turns autovacuum
// off for the table, which nothing writes once loaded: otherwise the
// server's statistics of the load, which backends report a second or so
// late, could still make autovacuum VACUUM and ANALYZE the rows while
// queries are timed, disturbing every system's timings.
func (b *Baseline) Vacuum(ctx context.Context) error {
	for _, s := range []string{
		"ALTER TABLE " + b.schema + ".events SET (autovacuum_enabled = false)",
		"VACUUM (ANALYZE) " + b.schema + ".events",
	} {
		if _, err := b.pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("vacuum: %w", err)
		}
	}
	return nil
}

// Count returns the number of events in the table.
func (b *Baseline) Count(ctx context.Context) (int64, error) {
	var n int64
	err := b.pool.QueryRow(ctx, "SELECT count(*) FROM "+b.schema+".events").Scan(&n)
	return n, err
}

// DiskBytes returns the bytes the table takes with its indexes.
func (b *Baseline) DiskBytes(ctx context.Context) (int64, error) {
	var n int64
	err := b.pool.QueryRow(ctx, "SELECT pg_total_relation_size($1)", b.schema+".events").Scan(&n)
	return n, err
}

// ClientNames returns the last name an event gave each client. It reads
// them once after a load and keeps them, as an application keeps a small
// clients table beside its events.
func (b *Baseline) ClientNames(ctx context.Context) (map[string]string, error) {
	if b.names != nil {
		return b.names, nil
	}
	rows, err := b.pool.Query(ctx, "SELECT DISTINCT ON (client_id) client_id, client_name FROM "+b.schema+
		".events WHERE client_name <> '' ORDER BY client_id, ts DESC")
	if err != nil {
		return nil, fmt.Errorf("client names: %w", err)
	}
	names := map[string]string{}
	var id, name string
	_, err = pgx.ForEachRow(rows, []any{&id, &name}, func() error {
		names[id] = name
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("client names: %w", err)
	}
	b.names = names
	return names, nil
}

// SQL returns the statement that answers q and its arguments.
func (b *Baseline) SQL(q apiusage.Query) (string, []any) {
	first, end := q.Interval.Hours()
	args := []any{time.Unix(first*3600, 0).UTC(), time.Unix(end*3600, 0).UTC()}
	var sel, group []string
	if expr := dateExpr(q.Granularity); expr != "" {
		sel = append(sel, expr)
		group = append(group, expr)
	}
	for _, d := range q.GroupBy {
		sel = append(sel, column(d))
		group = append(group, column(d))
	}
	sel = append(sel,
		"count(*) FILTER (WHERE status / 100 = 2)",
		"count(*) FILTER (WHERE status / 100 = 3)",
		"count(*) FILTER (WHERE status / 100 = 4)",
		"count(*) FILTER (WHERE status / 100 = 5)",
		"count(*) FILTER (WHERE status = 429)",
		"count(*)")
	where := []string{"ts >= $1", "ts < $2"}
	if q.OrganizationID != "" {
		args = append(args, q.OrganizationID)
		where = append(where, fmt.Sprintf("organization_id = $%d", len(args)))
	}
	for _, f := range []struct {
		col    string
		values []string
	}{{"client_id", q.ClientIDs}, {"http_method", q.Methods}, {"template_uri", q.TemplateURIs}} {
		if len(f.values) > 0 {
			args = append(args, f.values)
			where = append(where, fmt.Sprintf("%s = ANY($%d)", f.col, len(args)))
		}
	}
	s := "SELECT " + strings.Join(sel, ", ") + " FROM " + b.schema + ".events WHERE " + strings.Join(where, " AND ")
	if len(group) > 0 {
		s += " GROUP BY " + strings.Join(group, ", ") + " ORDER BY " + strings.Join(group, ", ")
	} else {
		s += " HAVING count(*) > 0" // an aggregate without keys answers one row even over nothing
	}
	return s, args
}

// Query answers q from the raw events, rows ordered by
// apiusage.CompareRows(q.GroupBy).
func (b *Baseline) Query(ctx context.Context, q apiusage.Query) ([]apiusage.Row, error) {
	var names map[string]string
	for _, d := range q.GroupBy {
		if d == apiusage.DimClient {
			var err error
			if names, err = b.ClientNames(ctx); err != nil {
				return nil, err
			}
		}
	}
	sql, args := b.SQL(q)
	rows, err := b.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	defer rows.Close()
	hasDate := q.Granularity != apiusage.GranularityNone
	var out []apiusage.Row
	for rows.Next() {
		var (
			row  apiusage.Row
			date time.Time
			dims = make([]string, len(q.GroupBy))
			c    = &row.Counts
		)
		dest := make([]any, 0, len(dims)+7)
		if hasDate {
			dest = append(dest, &date)
		}
		for i := range dims {
			dest = append(dest, &dims[i])
		}
		dest = append(dest, &c.Status200, &c.Status300, &c.Status400, &c.Status500, &c.Status429, &c.Requests)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		if hasDate {
			row.Date = date.UTC()
		}
		for i, d := range q.GroupBy {
			switch d {
			case apiusage.DimClient:
				row.ClientID = dims[i]
				row.ClientName = names[dims[i]]
			case apiusage.DimOrganization:
				row.OrganizationID = dims[i]
			case apiusage.DimUser:
				row.UserID = dims[i]
			case apiusage.DimTemplateURI:
				row.TemplateURI = dims[i]
			case apiusage.DimMethod:
				row.Method = dims[i]
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	return out, nil
}

// dateExpr is the bucket of an event's timestamp; sessions run in UTC, and
// PostgreSQL's weeks are ISO weeks starting on Monday.
func dateExpr(g apiusage.Granularity) string {
	switch g {
	case apiusage.GranularityDay:
		return "date_trunc('day', ts)"
	case apiusage.GranularityWeek:
		return "date_trunc('week', ts)"
	case apiusage.GranularityMonth:
		return "date_trunc('month', ts)"
	}
	return ""
}

func column(d apiusage.Dimension) string {
	switch d {
	case apiusage.DimClient:
		return "client_id"
	case apiusage.DimOrganization:
		return "organization_id"
	case apiusage.DimUser:
		return "user_id"
	case apiusage.DimTemplateURI:
		return "template_uri"
	case apiusage.DimMethod:
		return "http_method"
	}
	panic("postgres: unknown dimension " + string(d))
}

// Version returns the server's version number.
func (b *Baseline) Version(ctx context.Context) (string, error) {
	var v string
	err := b.pool.QueryRow(ctx, "SHOW server_version").Scan(&v)
	return v, err
}
