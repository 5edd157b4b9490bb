package diagnostics_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
)

// Claims of the docs that no other test states outright.

// Kinds: "Kinds() with no kinds filters nothing"; BufferSize: "at least 1";
// Subscribe: "with a ctx already done, it returns a subscription that is
// already closed (its Events yields nothing)".
func TestSubscribeOptionEdges(t *testing.T) {
	s := diagnostics.NewStream()
	all := s.Subscribe(context.Background(), diagnostics.Kinds())
	one := s.Subscribe(context.Background(), diagnostics.BufferSize(0))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := s.Subscribe(ctx)
	if n := s.Subscribers(); n != 2 {
		t.Errorf("%d subscribers, want 2: one subscribed with a done ctx is closed", n)
	}
	publish(s, seqEvents(1, 2, 3)...)

	if got := seqs(collect(all)); len(got) != 3 {
		t.Errorf("Kinds() delivered %v, want every event", got)
	}
	got := collect(one)
	if len(got) != 2 || lagged(t, got[0]).Missed != 2 || got[1].Seq != 3 {
		t.Errorf("BufferSize(0) delivered %v, want a lag notice of 2 then the newest event", got)
	}
	if got := collect(done); len(got) != 0 {
		t.Errorf("a subscription made with a done ctx delivered %v", got)
	}
}

// Stream.Close: "Closing twice does nothing"; "Publishing goes on into the
// replay ring".
func TestStreamCloseTwice(t *testing.T) {
	s := diagnostics.NewStream()
	s.Close()
	s.Close()
	publish(s, seqEvents(1)...)
	if n := s.Published(); n != 1 {
		t.Errorf("Published() = %d after a publish on a closed stream, want 1", n)
	}
}

// SubscribeOption: "repeated ones of the same kind [combine] with OR":
// MinLevel(debug) or MinLevel(warn) lets debug events through, in either
// order.
func TestRepeatedMinLevelIsOR(t *testing.T) {
	debug := runtime.Event{Seq: 1, Kind: runtime.KindTaskSpawned, Group: "g", Task: "t", TaskID: 1}
	warn := runtime.Event{Seq: 2, Kind: runtime.KindTaskFinished, Group: "g", Task: "t", TaskID: 1, Outcome: runtime.Error}
	for _, levels := range [][2]slog.Level{{slog.LevelDebug, slog.LevelWarn}, {slog.LevelWarn, slog.LevelDebug}} {
		s := diagnostics.NewStream()
		sub := s.Subscribe(context.Background(), diagnostics.MinLevel(levels[0]), diagnostics.MinLevel(levels[1]))
		publish(s, debug, warn)
		if got := seqs(collect(sub)); len(got) != 2 {
			t.Errorf("MinLevel(%v), MinLevel(%v) delivered %v, want both events", levels[0], levels[1], got)
		}
	}
}

// StreamOption and SubscribeOption: "An option given more than once takes
// its last value": the buffer of the last WithBufferSize or BufferSize
// holds all three events, the first one's would hold one.
func TestRepeatedBufferSizeTakesTheLast(t *testing.T) {
	s := diagnostics.NewStream(diagnostics.WithBufferSize(1), diagnostics.WithBufferSize(3))
	fromStream := s.Subscribe(context.Background())
	fromOption := s.Subscribe(context.Background(), diagnostics.BufferSize(1), diagnostics.BufferSize(3))
	publish(s, seqEvents(1, 2, 3)...)
	for name, sub := range map[string]*diagnostics.Subscription{"WithBufferSize": fromStream, "BufferSize": fromOption} {
		if got := seqs(collect(sub)); len(got) != 3 || got[0] != 1 {
			t.Errorf("%s(1), %s(3) delivered %v, want 1 2 3 with no lag", name, name, got)
		}
	}
}
