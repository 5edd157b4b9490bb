package dashboards

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// Grafana's template-variable syntaxes: $name, ${name}, ${name:format} and
// the deprecated [[name]] / [[name:format]]. Built-in variables start with
// "__" ($__rate_interval, $__interval, $__range, ...).
var templateVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[A-Za-z]+)?\}|\[\[([A-Za-z_][A-Za-z0-9_]*)(?::[A-Za-z]+)?\]\]|\$([A-Za-z_][A-Za-z0-9_]*)`)

// BuiltinDefaults are the values Expand gives Grafana's built-in interval
// variables when the caller does not: $__rate_interval as Grafana computes it
// for the provisioned 5 s scrape interval rounded up to a minute, so that a
// rate() has several samples.
var BuiltinDefaults = map[string]string{
	"__rate_interval": "1m",
	"__interval":      "15s",
	"__range":         "5m",
	"__range_s":       "300",
}

// Expand substitutes Grafana template variables in expr with vars[name].
// Built-in variables missing from vars take BuiltinDefaults. A variable with
// no value is an error: a query must never reach Prometheus with a literal $.
func Expand(expr string, vars map[string]string) (string, error) {
	var missing []string
	out := templateVar.ReplaceAllStringFunc(expr, func(m string) string {
		sub := templateVar.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3] // exactly one group matched
		if v, ok := vars[name]; ok {
			return v
		}
		if v, ok := BuiltinDefaults[name]; ok {
			return v
		}
		missing = append(missing, name)
		return m
	})
	if len(missing) > 0 {
		sort.Strings(missing)
		return "", fmt.Errorf("no value for template variable(s) %s in %q", strings.Join(missing, ", "), expr)
	}
	return out, nil
}

// linkVar is a variable of a data link URL: ${name:format}, where name may
// be a field path such as __field.labels.group.
var linkVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_.]*)(?::([A-Za-z]*))?\}`)

// ExpandLink substitutes the variables of a data link URL as Grafana does
// when a series is clicked: dashboard variables from vars,
// ${__field.labels.<name>} from the series' labels. Each variable must name
// its format, raw or percentencode: without one, Grafana versions differ in
// whether they encode. A variable with no value, or another format, is an
// error.
func ExpandLink(link string, vars, labels map[string]string) (string, error) {
	var errs []string
	out := linkVar.ReplaceAllStringFunc(link, func(m string) string {
		sub := linkVar.FindStringSubmatch(m)
		name, format := sub[1], sub[2]
		v, ok := vars[name]
		if label, isLabel := strings.CutPrefix(name, "__field.labels."); isLabel {
			v, ok = labels[label]
		}
		switch {
		case !ok:
			errs = append(errs, "no value for "+m)
		case format == "raw":
			return v
		case format == "percentencode":
			// Grafana's is encodeURIComponent with !'()* escaped too:
			// QueryEscape's, but a space is %20, not +.
			return strings.ReplaceAll(url.QueryEscape(v), "+", "%20")
		default:
			errs = append(errs, m+" needs the format raw or percentencode")
		}
		return m
	})
	if strings.Contains(linkVar.ReplaceAllString(link, ""), "$") {
		errs = append(errs, "a variable of another syntax")
	}
	if len(errs) > 0 {
		return "", fmt.Errorf("data link %q: %s", link, strings.Join(errs, "; "))
	}
	return out, nil
}
