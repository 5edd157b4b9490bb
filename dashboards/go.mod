module github.com/taskscope/taskscope/dashboards

go 1.26.7

require (
	github.com/grafana/grafana-foundation-sdk/go v0.0.22 // indirect
	github.com/prometheus/prometheus v0.316.0 // indirect
)
