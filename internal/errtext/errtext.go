// Package errtext renders an application's errors for the observers of
// telemetry and diagnostics, which must not panic on them.
package errtext

import "fmt"

// Text is err.Error(), or, when that panics (a typed-nil error whose
// Error dereferences its receiver: var e *T; return e), a placeholder
// naming err's type and the panic, such as "<*app.Error Error() panicked:
// runtime error: invalid memory address or nil pointer dereference>": a
// span must still end, an event still be published.
func Text(err error) (s string) {
	defer func() {
		if r := recover(); r != nil {
			s = fmt.Sprintf("<%T Error() panicked: %v>", err, r)
		}
	}()
	return err.Error()
}
