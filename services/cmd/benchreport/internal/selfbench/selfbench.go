// Package selfbench holds the benchmarks benchreport's own test runs: two
// sleeps of known length, so the framework's verdicts can be checked end to
// end (compile, ABBA rounds, parse, intervals, history, report) in
// `make test-unit`.
package selfbench
