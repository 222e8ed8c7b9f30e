package embedded

import (
	"context"

	"github.com/apiusage/apiusage"
)

var _ apiusage.RowSetQuerier = (*Store)(nil)

// A query's result is a RowSet whose strings are the dictionaries
// themselves: rows refer to strings by their ids, and nothing is copied or
// looked up to name them. Its rows are the one large allocation of a query
// that its caller keeps. A caller done with them (the server, once it has
// packed them into its own compact result) hands them back, and the next
// large query builds its rows in that memory: already touched pages instead
// of fresh ones, whose first touch (a page fault each 4 KiB) costs more
// than the rows do on the virtual machines this runs on.
const (
	// pooledRows bounds the capacity of a kept row slice: about 32 MB.
	pooledRows = 400_000
	// minPooledRows is the smallest result worth keeping memory for.
	minPooledRows = 4096
)

// newRowSet returns a RowSet of the dictionaries strs, with room for n
// rows: the kept one when it is large enough.
func (s *Store) newRowSet(strs *[numFields][]string, n int) *apiusage.RowSet {
	var rs *apiusage.RowSet
	if n >= minPooledRows {
		select {
		case rs = <-s.rowSets:
			if cap(rs.Rows) < n {
				rs = nil
			}
		default:
		}
	}
	if rs == nil {
		rs = &apiusage.RowSet{Rows: make([]apiusage.RowRef, 0, n)}
	}
	rs.Strings = [apiusage.NumRefs][]string{
		apiusage.RefOrganization: strs[fOrg],
		apiusage.RefClient:       strs[fClient],
		apiusage.RefClientName:   strs[fName],
		apiusage.RefUser:         strs[fUser],
		apiusage.RefTemplate:     strs[fTmpl],
		apiusage.RefMethod:       strs[fMethod],
	}
	return rs
}

// ReleaseRowSet keeps the memory of rs's rows for a later query, when it
// is worth keeping and no other is kept.
func (s *Store) ReleaseRowSet(rs *apiusage.RowSet) {
	if rs == nil {
		return
	}
	if c := cap(rs.Rows); c < minPooledRows || c > pooledRows {
		return
	}
	// Nothing of the result is kept but the rows' memory.
	*rs = apiusage.RowSet{Rows: rs.Rows[:0]}
	select {
	case s.rowSets <- rs:
	default:
	}
}

// Query answers q as QueryRowSet does, as rows.
func (s *Store) Query(ctx context.Context, q apiusage.Query) ([]apiusage.Row, error) {
	rs, err := s.QueryRowSet(ctx, q)
	if err != nil {
		return nil, err
	}
	rows := rs.RowSlice()
	s.ReleaseRowSet(rs)
	return rows, nil
}
