package errtext_test

import (
	"errors"
	"testing"

	"go.uber.org/goleak"

	"github.com/taskscope/taskscope/internal/errtext"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type nilDeref struct{ msg string }

func (e *nilDeref) Error() string { return e.msg }

func TestText(t *testing.T) {
	var typedNil *nilDeref
	for _, c := range []struct {
		err  error
		want string
	}{
		{errors.New("boom"), "boom"},
		{&nilDeref{"set"}, "set"},
		{typedNil, "<*errtext_test.nilDeref Error() panicked: runtime error: invalid memory address or nil pointer dereference>"},
	} {
		if got := errtext.Text(c.err); got != c.want {
			t.Errorf("Text(%#v) = %q, want %q", c.err, got, c.want)
		}
	}
}
