package telemetry

import (
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"

	"github.com/taskscope/taskscope/runtime"
)

// Span attribute keys: runtime's vocabulary, typed for the OTel API.
// Standard keys (error.type, exception.*, code.function.name) come from
// semconv.
const (
	attrGroup     = attribute.Key(runtime.AttrGroup)
	attrGroupID   = attribute.Key(runtime.AttrGroupID)
	attrTaskName  = attribute.Key(runtime.AttrTaskName)
	attrTaskID    = attribute.Key(runtime.AttrTaskID)
	attrOutcome   = attribute.Key(runtime.AttrOutcome)
	attrRun       = attribute.Key(runtime.AttrRun)
	attrRejected  = attribute.Key(runtime.AttrRejected)
	attrStack     = attribute.Key(runtime.AttrStack)
	attrCause     = attribute.Key(runtime.AttrCause)
	attrCauseText = attribute.Key(runtime.AttrCauseMessage)

	attrShutdownDrained      = attribute.Key(runtime.AttrShutdownDrained)
	attrShutdownAborted      = attribute.Key(runtime.AttrShutdownAborted)
	attrShutdownAbortedTasks = attribute.Key(runtime.AttrShutdownAbortedTasks)
	attrShutdownResult       = attribute.Key(runtime.AttrShutdownResult)
)

// maxText bounds messages put on spans (status descriptions, cause
// messages, a panic's exception.message): an error message, or what a
// panic value's String method returns, can be arbitrarily long, and a
// panic's error includes its stack, which has its own attribute.
const maxText = 1024

// maxAbortedNames bounds the task names listed on a shutdown span.
const maxAbortedNames = 64

// valid replaces invalid UTF-8 (a name built from request bytes, an error
// message quoting binary data) with U+FFFD. Everything put on a span goes
// through it: OTLP is protobuf, whose strings must be UTF-8, and an
// exporter fails the whole batch over one bad span. Valid strings come back
// as they are, without allocating.
func valid(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// truncate cuts s to at most maxText bytes without splitting a rune, and
// makes it valid UTF-8.
func truncate(s string) string {
	s = valid(s)
	if len(s) <= maxText {
		return s
	}
	i := maxText
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
