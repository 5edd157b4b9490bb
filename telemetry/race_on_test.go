//go:build race

package telemetry_test

// raceEnabled: the race detector instruments every function, which makes
// frames, and so stack measurements, larger.
const raceEnabled = true
