// Package dashboards holds taskscope's Grafana dashboards as code.
//
// The dashboards are written with the Grafana Foundation SDK
// (github.com/grafana/grafana-foundation-sdk/go, pinned in go.mod because it
// is pre-1.0) and rendered to the JSON files committed next to this file,
// which Grafana loads through the provisioning in deploy/grafana. Regenerate
// them with
//
//	go generate ./...    (in dashboards/; or: make dashboards)
//
// A test fails when a committed file differs from the generator's output.
//
// The package also carries the checks that keep the dashboards honest:
// [Lint] re-implements the dashboard-linter rules we adopt (templated
// datasource, $__rate_interval, units, titles, PromQL that parses, metrics
// that taskscope's telemetry package actually exports), and [Queries]
// returns every panel query with its template variables filled in, so an
// end-to-end test can evaluate each one against a real Prometheus.
//
// This is its own Go module so that the SDK and the Prometheus parser stay
// out of the library's go.mod.
package dashboards

//go:generate go run ./cmd/gen -out .
