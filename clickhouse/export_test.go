package clickhouse

// Quote is quote, for the tests of package clickhouse_test.
var Quote = quote
