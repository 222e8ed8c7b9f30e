package embedded

import "math/bits"

// This file holds the index of a table being written: from key to the row
// that table.add updates.

// rowIndex finds the row of a key in a table being written: an
// open-addressing hash table (linear probing) of row numbers, the keys being
// in the table's keys. It replaced a map[key]int32, which cost about 40 bytes
// a row, was built anew by doubling as a fresh hour's table grew, and whose
// generic hashing and growth were most of the single writer's CPU; this one
// costs 4 bytes a slot, 8 to 16 a row. It is a slice so that dropping it is
// setting it to nil.
//
// A slot holds 1 + a row number, or 0 when empty. Nothing is ever deleted
// from it: a key's slot is only changed to point at a later row of the same
// key, so probe sequences never break.
type rowIndex []int32

// indexMinSlots is the size of the smallest index.
const indexMinSlots = 64

// indexSlots returns the size of an index for rows rows, at most half full.
func indexSlots(rows int) int {
	return max(indexMinSlots, 1<<bits.Len(uint(2*rows)))
}

// hashKey mixes the key's five ids into 64 bits whose high bits choose a
// slot: one multiplication per pair of ids, then a finalizer so that keys
// that differ in one id only spread over the whole index.
func hashKey(k *key) uint64 {
	h := (uint64(k.org)|uint64(k.client)<<32)*0xc2b2ae3d27d4eb4f ^
		(uint64(k.user)|uint64(k.tmpl)<<32)*0x165667b19e3779f9 ^
		uint64(k.method)*0xff51afd7ed558ccd
	h ^= h >> 31
	h *= 0x94d049bb133111eb
	h ^= h >> 29
	return h
}

// slot returns the slot of k: the one holding its row, or the empty slot
// where it goes. The index must have an empty slot.
func (x rowIndex) slot(keys []key, k *key) *int32 {
	mask := uint(len(x) - 1)
	shift := uint(64 - bits.TrailingZeros(uint(len(x))))
	for i := uint(hashKey(k) >> shift); ; i = (i + 1) & mask {
		j := x[i]
		if j == 0 || keys[j-1] == *k {
			return &x[i]
		}
	}
}

// buildIndex returns an index of keys sized for at least rows rows, each
// key's slot holding its last row.
func buildIndex(keys []key, rows int) rowIndex {
	x := make(rowIndex, indexSlots(max(rows, len(keys))))
	for i := range keys {
		*x.slot(keys, &keys[i]) = int32(i + 1)
	}
	return x
}
