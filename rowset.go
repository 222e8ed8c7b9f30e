package apiusage

import (
	"context"
	"time"
)

// The string fields of a RowRef, numbered as BatchStrings numbers an
// event's.
const (
	RefOrganization = iota
	RefClient
	RefClientName
	RefUser
	RefTemplate
	RefMethod
	NumRefs
)

// RowSet is a query's rows with their strings given by reference, as a
// store that keeps its strings in dictionaries holds them: row i's field f
// is Strings[f][Rows[i].Refs[f]] and its date Dates[Rows[i].Date].
//
// A large result repeats a few strings over and over (clients, templates,
// methods), or holds many that the store has already (users): a RowSet
// hands them over once each instead of once a row, and a consumer that
// encodes rows encodes each distinct string once, telling them apart by
// reference instead of hashing their bytes.
type RowSet struct {
	// Strings holds each field's values by reference, the empty string at
	// 0. It may hold values no row refers to, such as a store's whole
	// dictionary, and is read only.
	Strings [NumRefs][]string
	// Dates holds the rows' dates by reference: the start of each bucket,
	// or the zero time for rows without a granularity.
	Dates []time.Time
	// Rows are in the order Store.Query returns them.
	Rows []RowRef
}

// RowRef is a row of a RowSet.
type RowRef struct {
	// Refs are the indexes of the row's strings in the RowSet's Strings,
	// by field (RefOrganization, ...).
	Refs [NumRefs]uint32
	// Date is the index of the row's date in the RowSet's Dates.
	Date   uint32
	Counts Counts
}

// Row returns row i as a Row.
func (s *RowSet) Row(i int) Row {
	r := &s.Rows[i]
	return Row{
		Date:           s.Dates[r.Date],
		OrganizationID: s.Strings[RefOrganization][r.Refs[RefOrganization]],
		ClientID:       s.Strings[RefClient][r.Refs[RefClient]],
		ClientName:     s.Strings[RefClientName][r.Refs[RefClientName]],
		UserID:         s.Strings[RefUser][r.Refs[RefUser]],
		TemplateURI:    s.Strings[RefTemplate][r.Refs[RefTemplate]],
		Method:         s.Strings[RefMethod][r.Refs[RefMethod]],
		Counts:         r.Counts,
	}
}

// RowSlice returns the rows as Rows, in a new slice (nil when there are
// none).
func (s *RowSet) RowSlice() []Row {
	if s == nil || len(s.Rows) == 0 {
		return nil
	}
	rows := make([]Row, len(s.Rows))
	for i := range rows {
		rows[i] = s.Row(i)
	}
	return rows
}

// RowSetQuerier is implemented by a Store that can answer a query as a
// RowSet, without building a Row for every row.
type RowSetQuerier interface {
	// QueryRowSet returns what Query would, as a RowSet.
	QueryRowSet(ctx context.Context, q Query) (*RowSet, error)
	// ReleaseRowSet hands back a RowSet that QueryRowSet returned, once
	// the caller is done with it (it must not touch it after), so that
	// the next large result is built in memory already touched: on some
	// virtual machines the first touch of fresh pages costs more than
	// building the rows does.
	ReleaseRowSet(s *RowSet)
}
