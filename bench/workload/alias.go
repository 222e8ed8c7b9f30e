package workload

// alias samples an index from a fixed discrete distribution in constant time
// (Vose's alias method): one 64-bit random number picks a column and flips
// its biased coin. The generator draws several indices per event, so a
// binary search over a CDF, or math/rand's Zipf with its logarithms, would
// cost more than writing the event.
type alias struct {
	prob  []uint32 // threshold of the column's coin, scaled to 2^32
	alias []int32  // the other index of the column
}

// newAlias builds the table for weights, which need not sum to one. Every
// weight must be non-negative and at least one positive.
func newAlias(weights []float64) alias {
	n := len(weights)
	var sum float64
	for _, w := range weights {
		sum += w
	}
	scaled := make([]float64, n)
	var small, large []int
	for i, w := range weights {
		scaled[i] = w * float64(n) / sum
		if scaled[i] < 1 {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	a := alias{prob: make([]uint32, n), alias: make([]int32, n)}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		a.prob[s] = uint32(scaled[s] * (1 << 32))
		a.alias[s] = int32(l)
		scaled[l] -= 1 - scaled[s]
		if scaled[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	// What remains has weight one up to rounding: always keep the column.
	for _, i := range append(small, large...) {
		a.prob[i] = 1<<32 - 1
		a.alias[i] = int32(i)
	}
	return a
}

// sample maps a uniform 64-bit number to an index: the high half picks the
// column (by multiplication, without modulo bias worth the name at these
// sizes), the low half flips its coin.
func (a alias) sample(r uint64) int {
	col := int((r >> 32) * uint64(len(a.prob)) >> 32)
	if uint32(r) < a.prob[col] {
		return col
	}
	return int(a.alias[col])
}
