package diagnostics

// mustOption panics with a clear message on a nil option (a programming
// error), rather than with a nil dereference inside the option loop.
func mustOption(o any, kind string) {
	if o == nil {
		panic("taskscope/diagnostics: nil " + kind)
	}
}
