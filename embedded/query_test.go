package embedded

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestOrderGroups checks both ways orderGroups sorts (packed ranks, and
// rank tuples when they do not fit in 64 bits) against sorting by the
// strings themselves.
func TestOrderGroups(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var strs [numFields][]string
	for f := range numFields {
		strs[f] = []string{""}
		for i := range 40 {
			// Ids in an order unrelated to the strings' order.
			strs[f] = append(strs[f], fmt.Sprintf("v%02d-%d", rng.IntN(100), i))
		}
	}
	for _, fields := range [][]int{{fClient}, {fTmpl, fMethod}, {fUser, fOrg, fClient}, {fMethod, fTmpl, fClient, fUser, fOrg}, {}} {
		var gs groups
		seen := map[group]bool{}
		for b := range int32(5) {
			for range 300 {
				g := group{bucket: b}
				for _, f := range fields {
					id := uint32(rng.IntN(len(strs[f])))
					switch f {
					case fOrg:
						g.k.org = id
					case fClient:
						g.k.client = id
					case fUser:
						g.k.user = id
					case fTmpl:
						g.k.tmpl = id
					case fMethod:
						g.k.method = id
					}
				}
				if !seen[g] { // groups of a bucket are distinct
					seen[g] = true
					gs.add(g)
				}
			}
		}
		str := func(g *group, f int) string {
			k := g.k
			return strs[f][[]uint32{fOrg: k.org, fClient: k.client, fUser: k.user, fTmpl: k.tmpl, fMethod: k.method}[f]]
		}
		want := make([]int32, gs.n)
		for i := range want {
			want[i] = int32(i)
		}
		slices.SortFunc(want, func(x, y int32) int {
			a, b := gs.at(x), gs.at(y)
			if a.bucket != b.bucket {
				return int(a.bucket - b.bucket)
			}
			for _, f := range fields {
				if c := strings.Compare(str(a, f), str(b, f)); c != 0 {
					return c
				}
			}
			return 0
		})
		for _, maxBits := range []int{64, 0} {
			var got []int32
			for _, o := range orderGroups(&gs, fields, &strs, maxBits) {
				got = append(got, o.i)
			}
			if !slices.Equal(got, want) {
				t.Errorf("fields %v, maxBits %d: order %v..., want %v...", fields, maxBits, got[:min(10, len(got))], want[:min(10, len(want))])
			}
		}
	}
}
