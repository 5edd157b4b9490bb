module github.com/taskscope/taskscope/e2e

go 1.26.7

require github.com/taskscope/taskscope/dashboards v0.0.0

require (
	github.com/chromedp/cdproto v0.159.0 // indirect
	github.com/chromedp/chromedp v0.23.0 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)

replace github.com/taskscope/taskscope/dashboards => ../dashboards
