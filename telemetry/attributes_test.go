package telemetry

import "testing"

func TestTruncate(t *testing.T) {
	long := string(make([]byte, maxText-1)) + "é" // the rune straddles the limit
	got := truncate(long)
	if len(got) > maxText+len("…") || got[len(got)-len("…"):] != "…" {
		t.Errorf("truncate gave %d bytes", len(got))
	}
	if truncate("short") != "short" {
		t.Error("short string changed")
	}
}
