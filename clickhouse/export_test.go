package clickhouse

// Quote is quote, for the tests of package clickhouse_test.
var Quote = quote

// Exec is Baseline.exec, for the tests of package clickhouse_test.
var Exec = (*Baseline).exec
