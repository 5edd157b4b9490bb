package runtime

import (
	"bytes"
	"fmt"
	"runtime/pprof"
	"strconv"
	"strings"
)

// labelKey identifies the goroutines of one task name in one group.
type labelKey struct{ groupID, task string }

// labeledStacks returns, for every (group, task) label pair, the stacks of
// the goroutines running under it, formatted like a traceback. It reads one
// goroutine profile: the standard library cannot read another goroutine's
// stack directly, and paying for it here, at abort time, keeps spawns
// cheap. Tasks that share a group and a name share labels, so each of them
// is shown every stack found under those labels (only that group's: the
// labels carry its LabelGroupID).
func labeledStacks() map[labelKey]string {
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		return nil
	}
	// The first line is the profile's header ("goroutine profile: total
	// N"), directly followed by the first record, the most common stack.
	_, records, _ := strings.Cut(buf.String(), "\n")
	byKey := map[labelKey][]string{}
	for _, entry := range strings.Split(records, "\n\n") {
		key, stack, ok := parseProfileEntry(entry)
		if ok {
			byKey[key] = append(byKey[key], stack)
		}
	}
	out := make(map[labelKey]string, len(byKey))
	for k, stacks := range byKey {
		out[k] = strings.Join(stacks, "\n")
	}
	return out
}

// parseProfileEntry reads one record of a debug=1 goroutine profile:
//
//	3 @ 0x43a 0x44b
//	# labels: {"taskscope.group":"runtime.a", "taskscope.group.id":"7", "taskscope.task":"b"}
//	#	0x43a	main.f+0x2c	/src/main.go:12
func parseProfileEntry(entry string) (labelKey, string, bool) {
	lines := strings.Split(strings.TrimSpace(entry), "\n")
	if len(lines) < 2 {
		return labelKey{}, "", false
	}
	count, _, _ := strings.Cut(lines[0], " @")
	labels, ok := strings.CutPrefix(lines[1], "# labels: ")
	if !ok {
		return labelKey{}, "", false
	}
	m := parseLabels(labels)
	key := labelKey{m[LabelGroupID], m[LabelTask]}
	if key.groupID == "" || key.task == "" {
		return labelKey{}, "", false
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s goroutine(s) labeled %s:\n", count, labels)
	for _, l := range lines[2:] {
		if fn, fileLine, ok := parseFrame(l); ok {
			fmt.Fprintf(&b, "%s\n\t%s\n", fn, fileLine)
		}
	}
	return key, b.String(), true
}

// parseFrame reads one frame line of a record: "#", pc, function+offset,
// file:line, padded with tabs. The file's path may contain spaces.
func parseFrame(line string) (fn, fileLine string, ok bool) {
	f := strings.Fields(line)
	if len(f) < 4 || f[0] != "#" {
		return "", "", false
	}
	_, rest, _ := strings.Cut(line, f[2])
	return f[2], strings.TrimSpace(rest), true
}

// parseLabels reads {"k":"v", "k2":"v2"} as printed by runtime/pprof.
func parseLabels(s string) map[string]string {
	m := map[string]string{}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}")
	for s != "" {
		k, rest, ok := cutQuoted(s)
		if !ok || !strings.HasPrefix(rest, ":") {
			return m
		}
		v, rest, ok := cutQuoted(rest[1:])
		if !ok {
			return m
		}
		m[k] = v
		s = strings.TrimPrefix(rest, ", ")
	}
	return m
}

func cutQuoted(s string) (value, rest string, ok bool) {
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", false
	}
	v, err := strconv.Unquote(q)
	return v, s[len(q):], err == nil
}

// panicStack cuts from a stack taken by the recovery (debug.Stack in
// exitAbnormally) the frames of the recovery itself, between the
// goroutine's header and the panic call, so that it reads as Go prints a
// panic. A stack without a panic frame is returned whole.
func panicStack(stack []byte) []byte {
	header := bytes.IndexByte(stack, '\n')
	at := bytes.Index(stack, []byte("\npanic("))
	if header < 0 || at < header {
		return stack
	}
	return append(stack[:header+1], stack[at+1:]...)
}
