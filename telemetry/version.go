package telemetry

// Version is this package's version, the version of the instrumentation
// scope of its spans (with [ScopeName]). It is bumped at release.
const Version = "0.1.0"
