package postgres

import "github.com/jackc/pgx/v5/pgxpool"

// Pool returns b's connection pool, for the tests of package postgres_test.
func Pool(b *Baseline) *pgxpool.Pool { return b.pool }
