package diagnostics_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/taskscope/taskscope/diagnostics"
	"github.com/taskscope/taskscope/runtime"
)

// asJSONString is what encoding/json makes of s: each byte that is not
// part of a valid UTF-8 sequence becomes U+FFFD, as converting to runes
// does.
func asJSONString(s string) string { return string([]rune(s)) }

// FuzzEventJSON encodes events with arbitrary strings (invalid UTF-8
// included) and checks that each is valid JSON, one line (as the SSE data:
// and NDJSON framing need), that decodes back to the same kind, seq,
// level, group, task, function and ids, the strings as encoding/json
// promises them (invalid bytes replaced by U+FFFD), and the error and
// cause as their messages capped at DefaultMaxMessage.
func FuzzEventJSON(f *testing.F) {
	f.Add(runtime.KindTaskFinished, uint64(1), "svc.ingest", "fetch", "pkg.fetch", "boom\nline two", int64(0), uint64(7), uint64(1), uint64(3), uint8(2))
	f.Add("", uint64(0), "", "", "", "", int64(-1), uint64(0), uint64(0), uint64(0), uint8(0))
	f.Add("k\x80", uint64(1<<63), "a\xffb", "\u2028\u2029<>&", "\x00\x1f\"\\", "\xed\xa0\x80 surrogate", int64(1<<62), uint64(1), uint64(2), uint64(3), uint8(4))
	f.Add(runtime.KindGroupShutdownDone, uint64(9), "a", "b", "c", strings.Repeat("é", 2000), int64(1), uint64(1), uint64(1), uint64(1), uint8(3))
	f.Fuzz(func(t *testing.T, kind string, seq uint64, group, task, function, msg string, unixNano int64, groupID, parentID, taskID uint64, outcome uint8) {
		ev := runtime.Event{
			Seq: seq, Time: time.Unix(0, unixNano).UTC(), Kind: kind,
			Group: group, GroupID: groupID, ParentGroupID: parentID,
			Task: task, TaskID: taskID, Function: function,
			Outcome: runtime.Outcome(outcome % 6),
			Stack:   []byte(msg),
		}
		if msg != "" {
			ev.Err, ev.Cause = errors.New(msg), &msgErr{msg, errFuzzSentinel}
		}
		j := diagnostics.NewEventJSON(ev)
		b, err := json.Marshal(j)
		if err != nil {
			t.Fatalf("encoding %+v: %v", j, err)
		}
		if !json.Valid(b) || !utf8.Valid(b) || strings.ContainsAny(string(b), "\r\n") {
			t.Fatalf("not valid one-line JSON: %q", b)
		}
		var got diagnostics.EventJSON
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("decoding %s: %v", b, err)
		}
		want := diagnostics.EventJSON{
			Seq: seq, Kind: asJSONString(kind), Level: ev.Level().String(),
			Group: asJSONString(group), GroupID: groupID, ParentGroupID: parentID,
			Task: asJSONString(task), TaskID: taskID, Function: asJSONString(function),
		}
		if got.Seq != want.Seq || got.Kind != want.Kind || got.Level != want.Level || got.Group != want.Group || got.GroupID != want.GroupID ||
			got.ParentGroupID != want.ParentGroupID || got.Task != want.Task || got.TaskID != want.TaskID || got.Function != want.Function {
			t.Errorf("decoded %+v\nwant    %+v", got, want)
		}
		if !got.Time.Equal(ev.Time) {
			t.Errorf("time %v, want %v", got.Time, ev.Time)
		}
		if got.Stack != asJSONString(msg) {
			t.Errorf("stack %q, want %q", got.Stack, asJSONString(msg))
		}
		if len(msg) <= diagnostics.DefaultMaxMessage {
			if wantErr := asJSONString(msg); got.Cause != wantErr || (kind != runtime.KindTaskCancelRequested && kind != runtime.KindGroupCancelRequested && got.Error != wantErr) {
				t.Errorf("error %q, cause %q, want %q", got.Error, got.Cause, wantErr)
			}
		} else if utf8.ValidString(msg) {
			checkCapped(t, "cause", msg, got.Cause, diagnostics.DefaultMaxMessage)
		}
	})
}
