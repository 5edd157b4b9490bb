// Package conformance holds the cross-channel conformance tests: one
// randomized workload observed at once by telemetry (spans and metrics),
// the slog observer and the diagnostic stream, after which the channels
// must agree exactly. It has no non-test code.
package conformance
