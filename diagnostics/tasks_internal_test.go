package diagnostics

import (
	"testing"
	"time"
)

// TestFormatAge: ages truncate, as the page's script (fmtAge) shows them
// once it takes over: an age must not go back when the script first
// updates it, and 59.96 s is not "60.0s".
func TestFormatAge(t *testing.T) {
	for _, c := range []struct {
		age  time.Duration
		want string
	}{
		{999 * time.Millisecond, "999ms"},
		{time.Second, "1.0s"},
		{4100 * time.Millisecond, "4.1s"}, // 4.1 s as seconds is 4.099999999… s in ns: not "4.0s"
		{12360 * time.Millisecond, "12.3s"},
		{59960 * time.Millisecond, "59.9s"},
		{time.Minute, "1m00s"},
		{time.Hour - time.Millisecond, "59m59s"},
		{24*time.Hour - time.Second, "23h59m"},
		{49*time.Hour + 59*time.Minute, "2d01h"},
	} {
		if got := formatAge(c.age.Seconds()); got != c.want {
			t.Errorf("formatAge(%v) = %q, want %q (as the page's script shows it)", c.age, got, c.want)
		}
	}
}
