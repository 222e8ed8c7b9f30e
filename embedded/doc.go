// Package embedded is the pure-Go, single-directory implementation of the
// apiusage storage interfaces: the usage store (Store), the directory of
// organizations and clients (Directory) and the registry of query executions
// (Executions).
//
// # In memory
//
// Usage is never kept one row per request. Every string (organization,
// client, user, template URI, method, client name) is dictionary-encoded to a
// uint32 id, and requests are counted in rollups keyed by those ids: six
// 32-bit counters (total, 2xx, 3xx, 4xx, 5xx, 429) per row. State is split
// into one partition per UTC day, which holds
//
//   - the full rollup of each of its 24 hours, keyed by (organization, client,
//     user, template, method): what queries that group by user, and the
//     hours of days an interval cuts, read;
//   - the slim rollup of the whole day, without the user: what most queries
//     (whole days, not grouped by user) read, with far fewer rows;
//   - the user rollup of the whole day, keyed by organization and user only:
//     what queries of whole days grouped by user (and by nothing else but
//     the organization, with no filter on clients, templates or methods)
//     read, one row per user of the day instead of one per user, client,
//     template, method and hour.
//
// A rollup is parallel slices of keys and counters, scanned sequentially by
// queries, plus a hash index used only to update it, built lazily, and
// dropped for days more than a day older than the newest at each
// checkpoint. A row whose counters would overflow continues in a new row
// with the same key; queries sum rows, so answers stay exact.
//
// Once a day is more than a day older than the newest written, the writer
// freezes its rollups (freeze.go): rows sorted by organization and client
// into exact-size slices, with a directory of each organization's rows,
// and no index. A query about one organization, or about clients (whose
// organizations the state tracks), reads only their rows: a binary search
// per organization and client instead of a scan of everyone's. A late
// write to a frozen rollup updates its row in place or appends after the
// sorted rows, which queries read whole until the writer freezes the
// rollup again. Open freezes every rollup it recovers.
//
// Frozen hourly and user rollups are then packed (packed.go) once a checkpoint has
// written them to its cold file (cold.go): kept in the column encoding of
// the files (about 8 bytes a row instead of 44), one organization a chunk,
// which queries of that organization decode into scratch and restarts keep
// as they read them. A late event into a packed rollup adds a row beside
// its chunks, which queries read too, and the next checkpoint merges into
// new chunks: a backfill costs the rows it adds, not the hours it touches.
// Packed chunks are slices of the cold file, mapped read-only (mapped.go): they
// are the page cache's memory, not the process's.
//
// Queries take their working memory (dense group arrays, groups, sort
// keys, decoded chunks) from a few scratches the store keeps, rather than
// allocating it: the first touch of fresh memory costs more than most of
// the work done in it. A result is an apiusage.RowSet whose rows refer to
// the dictionaries' strings by id (Store.QueryRowSet): its rows are the one
// allocation a query's caller keeps; handed back (Store.ReleaseRowSet),
// they hold the next.
//
// # Writing
//
// Append turns its batch into rollup deltas in the caller's goroutine
// (dictionary lookups and aggregation, the bulk of the CPU work), then hands
// it to a single writer goroutine. A batch that carries apiusage.BatchStrings
// (the server's decoder interns each batch's strings anyway) has each
// distinct string looked up once rather than once per event, once every
// event is checked against the hint; the aggregation runs in memory kept
// from batch to batch, since on the VMs this runs on fresh memory costs more
// than the work done in it. The writer takes every batch waiting,
// decides idempotency keys and event ids against what it remembers, encodes
// the group as one WAL record, writes and fsyncs it once (group commit),
// applies the deltas under the state's write lock and answers every Append
// of the group. An Append therefore returns only once its batch is durable,
// and Query sees it from then on.
//
// # On disk
//
// The data directory holds a LOCK file (flock: one process at a time),
// WAL segments wal-NNNNNNNNNNNNNNNNNNNN.log, at most one snapshot
// snap-NNNNNNNNNNNNNNNNNNNN.bin (two, briefly, while a checkpoint finishes)
// and the cold files cold-NNNNNNNNNNNNNNNNNNNN.bin it refers to.
// Both are sequences of frames: u32 length, u32 CRC-32C, payload. A WAL
// record holds one group commit: the dictionary strings added since the
// previous record, then for each batch its idempotency key and receipt, the
// event ids it made remembered, the client names it gave and its rollup
// deltas, all varint-encoded (see wal.go). The snapshot numbered N holds the
// state of every segment numbered below N: the dictionary, client names,
// remembered keys and ids, the slim daily rollups and the hourly rollups of
// and user rollups of the two newest days column by column (see
// snapshot.go), and for every older hour and user rollup where its rows
// are in a cold file: a checkpoint writes only the rollups it packs, to a cold file of its own, so that its cost follows
// the warm state, not everything recorded. Frozen rollups are written in
// their sorted order, so that loading them needs no sort.
//
// When the WAL passes Options.CheckpointBytes, or a new day leaves many cold
// rows to pack, the writer starts segment N,
// takes a copy-on-write view of the state and writes cold file N (fsync)
// and snapshot N in the background (temporary file, fsync, rename,
// directory fsync), then deletes the older segments and snapshot and the
// cold files snapshot N does not refer to. Close writes a final snapshot.
//
// Open loads the snapshot, decoding its rollups on every core, and replays
// the segments after it, reading and decoding records on one goroutine while
// another applies them; it logs what it read and where the time went (the
// "recovered" line). A record that is cut short or fails its CRC at the
// end of the last segment is a write a crash interrupted, never
// acknowledged: it is cut off. Damage anywhere else is an error. Records hold decisions, not requests, so a replay counts
// exactly what the run that wrote them counted.
package embedded
