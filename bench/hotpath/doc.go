// Package hotpath holds end-to-end benchmarks of apiusage's hot paths, the
// server and the embedded store in one process behind real HTTP, on the
// benchmark's workload: ingesting NDJSON batches and answering the
// organization query of the suite. They exist to be profiled:
//
//	go test ./bench/hotpath -run XXX -bench IngestHTTP -cpuprofile cpu.out -memprofile mem.out
//	go tool pprof -top cpu.out
//
// The package has no code of its own; the micro-benchmarks of each piece
// live beside it (embedded, server).
package hotpath
