package embedded

import "slices"

// radixMin is the fewest values sortOrds sorts by radix: below it, a
// comparison sort is as fast and needs no second buffer.
const radixMin = 1 << 10

// sortOrds sorts a, whose values are below 1<<width, and returns the
// sorted slice: a itself, or tmp grown to a's length (tmp is scratch, a
// second buffer as long as a). A large result's ordering keys (see
// orderGroups) are random integers of 30 to 40 bits; sorting them by
// comparisons, mispredicted branches, was 13% of the server's CPU for the
// benchmark's 7-day query grouped by user. A least-significant-digit radix
// sort reads and writes each value once a byte of width, and skips the
// bytes every value shares: about ten times faster on 32,000 keys
// (BenchmarkSortOrds).
func sortOrds(a, tmp []uint64, width int) (sorted, scratch []uint64) {
	if len(a) < radixMin {
		slices.Sort(a)
		return a, tmp
	}
	tmp = reuse(tmp, len(a))[:len(a)]
	src, dst := a, tmp
	for shift := 0; shift < width; shift += 8 {
		var count [256]int
		for _, v := range src {
			count[v>>shift&0xff]++
		}
		if count[src[0]>>shift&0xff] == len(src) {
			continue // every value has this byte
		}
		pos := 0
		for i, c := range count {
			count[i] = pos
			pos += c
		}
		for _, v := range src {
			d := v >> shift & 0xff
			dst[count[d]] = v
			count[d]++
		}
		src, dst = dst, src
	}
	return src, dst
}
