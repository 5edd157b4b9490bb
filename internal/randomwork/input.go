package randomwork

import "fmt"

// Input is the input of a stateful fuzz test (runtime's FuzzOps,
// conformance's FuzzChannelsAgree), read one byte at a time as the test
// decodes operations from it. Past its end it reads zeros, so that every
// input decodes to something.
type Input struct {
	data []byte
	pos  int
	errs int // errors made so far, to number them
}

// NewInput returns an Input reading data.
func NewInput(data []byte) *Input { return &Input{data: data} }

// Byte returns the next byte, or 0 past the end.
func (in *Input) Byte() byte {
	if in.pos >= len(in.data) {
		return 0
	}
	b := in.data[in.pos]
	in.pos++
	return b
}

// More reports whether bytes are left to read.
func (in *Input) More() bool { return in.pos < len(in.data) }

// NewErr returns a new error, "what N": numbered, so that no two errors of
// one input are equal and a check can tell whose it is.
func (in *Input) NewErr(what string) error {
	in.errs++
	return fmt.Errorf("%s %d", what, in.errs)
}
