package dashboards

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// RunbookQuery is one PromQL block (a ```promql fence) of the runbooks,
// docs/runbooks.md: a query the text tells whoever is paged to run.
type RunbookQuery struct {
	Section string // the "## " heading the block is under (the alert's name)
	Raw     string // as written, with <label> placeholders
	Expr    string // Raw with each <label> replaced by the alert label's value
	// Placeholders are the labels Raw names as <label>, in order of first
	// use: the alert's labels the reader copies in.
	Placeholders []string
}

// placeholder is a runbook query's stand-in for an alert label's value,
// <job>, <group>: a label name in angle brackets.
var placeholder = regexp.MustCompile(`<([a-z_][a-z0-9_]*)>`)

// RunbookQueries returns the PromQL blocks of doc (the text of
// docs/runbooks.md), each with its placeholders replaced by labels[name],
// as the reader replaces them with the alert's labels. A placeholder with
// no value in labels is an error: a query must not reach Prometheus with
// one.
func RunbookQueries(doc string, labels map[string]string) ([]RunbookQuery, error) {
	var (
		out     []RunbookQuery
		section string
		block   *strings.Builder
	)
	for line := range strings.Lines(doc) {
		trimmed := strings.TrimSpace(line)
		switch {
		case block != nil && trimmed == "```":
			q := RunbookQuery{Section: section, Raw: strings.TrimSpace(block.String())}
			var missing []string
			q.Expr = placeholder.ReplaceAllStringFunc(q.Raw, func(m string) string {
				name := placeholder.FindStringSubmatch(m)[1]
				if !slices.Contains(q.Placeholders, name) {
					q.Placeholders = append(q.Placeholders, name)
				}
				v, ok := labels[name]
				if !ok {
					missing = append(missing, name)
					return m
				}
				return v
			})
			if len(missing) > 0 {
				sort.Strings(missing)
				return nil, fmt.Errorf("runbook %s: no value for <%s> in %s", section, strings.Join(missing, ">, <"), q.Raw)
			}
			out = append(out, q)
			block = nil
		case block != nil:
			block.WriteString(line)
		case trimmed == "```promql":
			block = &strings.Builder{}
		case strings.HasPrefix(line, "## "):
			section = strings.TrimSpace(strings.TrimPrefix(line, "## "))
		}
	}
	if block != nil {
		return nil, fmt.Errorf("runbook %s: unterminated ```promql block", section)
	}
	return out, nil
}
