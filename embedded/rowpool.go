package embedded

import "github.com/apiusage/apiusage"

var _ apiusage.RowReleaser = (*Store)(nil)

// Result rows are the one large allocation of a query that its caller
// keeps. A caller done with them (the server, once it has packed them into
// its own compact result) hands them back, and the next large query builds
// its rows in that memory: already touched pages instead of fresh ones,
// whose first touch (a page fault each 4 KiB) costs more than the rows do on
// the virtual machines this runs on.
const (
	// pooledRows bounds the capacity of a kept row slice: about 70 MB.
	pooledRows = 400_000
	// minPooledRows is the smallest result worth keeping memory for.
	minPooledRows = 4096
)

// rowSlice returns a slice of n rows, the kept one when it is large enough.
// Its rows may hold an earlier result's: the caller sets every row whole.
func (s *Store) rowSlice(n int) []apiusage.Row {
	if n >= minPooledRows {
		select {
		case rows := <-s.rowPool:
			if cap(rows) >= n {
				return rows[:n]
			}
		default:
		}
	}
	return make([]apiusage.Row, n)
}

// ReleaseRows keeps the memory of rows for a later query, when it is worth
// keeping and no other is kept.
func (s *Store) ReleaseRows(rows []apiusage.Row) {
	if c := cap(rows); c < minPooledRows || c > pooledRows {
		return
	}
	select {
	case s.rowPool <- rows[:0]:
	default:
	}
}
