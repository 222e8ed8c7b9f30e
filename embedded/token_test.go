package embedded

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/storetest"
)

// tokenMemory remembers the tokens a store gave values, as the server's
// decoder does from batch to batch, and sends them back with later batches.
type tokenMemory struct {
	mu    sync.Mutex
	store uint64
	toks  [6]map[string]uint32
}

// send sets h's tokens to those remembered for its values.
func (m *tokenMemory) send(h *apiusage.BatchStrings) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h.TokenStore = m.store
	for f, vals := range h.Values {
		h.Tokens[f] = make([]uint32, len(vals))
		for j, v := range vals {
			h.Tokens[f][j] = m.toks[f][v]
		}
	}
}

// keep remembers the tokens the store filled in, forgetting all others
// when they are of another store.
func (m *tokenMemory) keep(h *apiusage.BatchStrings) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h.TokenStore != m.store {
		m.store = h.TokenStore
		for f := range m.toks {
			m.toks[f] = nil
		}
	}
	for f, vals := range h.Values {
		if m.toks[f] == nil {
			m.toks[f] = map[string]uint32{}
		}
		for j, v := range vals {
			if t := h.Tokens[f][j]; t != 0 {
				m.toks[f][v] = t
			}
		}
	}
}

// tokening is a store whose Appends carry hints with the tokens of mem.
type tokening struct {
	*Store
	mem *tokenMemory
}

func (t tokening) Append(ctx context.Context, b apiusage.Batch) (apiusage.Receipt, error) {
	b.Events = append([]apiusage.Event(nil), b.Events...)
	b.Strings = hintOf(b.Events)
	t.mem.send(b.Strings)
	r, err := t.Store.Append(ctx, b)
	t.mem.keep(b.Strings)
	return r, err
}

// TestContractTokens runs the contract with hints carrying the tokens the
// store gave in earlier batches, with a memory of its own and with one
// shared by every store of the run, whose tokens are mostly another
// store's: those must not be trusted.
func TestContractTokens(t *testing.T) {
	t.Run("own", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) apiusage.Store {
			return tokening{Store: openTest(t, "", Options{}), mem: &tokenMemory{}}
		})
	})
	t.Run("shared", func(t *testing.T) {
		mem := &tokenMemory{}
		storetest.Run(t, func(t *testing.T) apiusage.Store {
			return tokening{Store: openTest(t, "", Options{}), mem: mem}
		})
	})
}

// TestResolveHintTokens checks that resolveHint fills in every value's id as
// its token, takes its own tokens without a lookup, and ignores tokens of
// another store, past its dictionary or not matching the values.
func TestResolveHintTokens(t *testing.T) {
	s := openTest(t, "", Options{})
	other := openTest(t, "", Options{})
	w := newWorkload(11, 300)
	b := w.batch(200)
	b.Strings = hintOf(b.Events)
	resolve := func(s *Store, b apiusage.Batch) []uint32 {
		t.Helper()
		ids := make([]uint32, numFields*len(b.Events))
		if _, _, hinted, err := s.resolveHint(b, &batchScratch{}, ids); err != nil || !hinted {
			t.Fatalf("resolveHint: hinted %v, err %v", hinted, err)
		}
		return ids
	}
	withTokens := func(h *apiusage.BatchStrings) *apiusage.BatchStrings {
		c := *h
		for f, vals := range h.Values {
			c.Tokens[f] = make([]uint32, len(vals))
		}
		return &c
	}
	// Without tokens: nothing filled in.
	want := resolve(s, b)
	if b.Strings.TokenStore != 0 || b.Strings.Tokens[0] != nil {
		t.Fatalf("tokens appeared without slices to hold them")
	}
	// With room for them: each value's id, named by the store.
	b.Strings = withTokens(b.Strings)
	if got := resolve(s, b); !slices.Equal(got, want) {
		t.Fatal("ids changed with empty tokens")
	}
	h := b.Strings
	if h.TokenStore != s.dict.instance || h.TokenStore == other.dict.instance {
		t.Fatalf("TokenStore %d, want the store's own %d (the other's is %d)", h.TokenStore, s.dict.instance, other.dict.instance)
	}
	for rf, f := range hintFields {
		for j, v := range h.Values[rf] {
			if id, _ := s.dict.lookup(f, v); h.Tokens[rf][j] != id {
				t.Fatalf("field %d value %q: token %d, want its id %d", rf, v, h.Tokens[rf][j], id)
			}
		}
	}
	// Its own tokens are taken as they are: a token naming another value
	// shows in the ids (a store that looked values up anyway would not
	// show it).
	var ev int // an event with a user
	for ev = range h.Refs {
		if h.Refs[ev][3] != 0 {
			break
		}
	}
	user := h.Refs[ev][3]
	swapped := uint32(0)
	for j := range h.Values[3] {
		if t := h.Tokens[3][j]; t != 0 && t != h.Tokens[3][user] {
			swapped = t
			break
		}
	}
	if user == 0 || swapped == 0 {
		t.Fatal("the batch lacks two users")
	}
	h.Tokens[3][user] = swapped
	if got := resolve(s, b)[ev*numFields+fUser]; got != swapped {
		t.Fatalf("user id %d, want %d: the store's own token was not taken", got, swapped)
	}
	// The same wrong token is not trusted from anyone else, nor when past
	// the dictionary's end, nor when the tokens do not match the values.
	for _, spoil := range []struct {
		name  string
		spoil func(h *apiusage.BatchStrings)
	}{
		{"another store's", func(h *apiusage.BatchStrings) { h.TokenStore = other.dict.instance }},
		{"no store's", func(h *apiusage.BatchStrings) { h.TokenStore = 0 }},
		{"past the end", func(h *apiusage.BatchStrings) { h.Tokens[3][user] = uint32(len(s.dict.strs[fUser])) }},
		{"short", func(h *apiusage.BatchStrings) { h.Tokens[3] = h.Tokens[3][:len(h.Tokens[3])-1] }},
	} {
		h.Tokens[3][user] = swapped
		spoil.spoil(h)
		if got := resolve(s, b); !slices.Equal(got, want) {
			t.Errorf("%s token: ids differ from the lookups'", spoil.name)
		}
		h.TokenStore = s.dict.instance
		h.Tokens[3] = h.Tokens[3][:len(h.Values[3])]
	}
	// Another store does not trust s's tokens, and names its own.
	h.Tokens[3][user] = swapped
	ids := resolve(other, b)
	for i, e := range b.Events {
		if got, _ := other.dict.lookup(fUser, e.UserID); ids[i*numFields+fUser] != got {
			t.Fatalf("event %d: the other store's user id %d, want %d", i, ids[i*numFields+fUser], got)
		}
	}
	if h.TokenStore != other.dict.instance {
		t.Fatalf("TokenStore %d after the other store, want %d", h.TokenStore, other.dict.instance)
	}
}
