package runtime

import (
	"context"
	"errors"
	"reflect"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// TestFillEventWritesEveryField fills a buffer holding a stale event with
// every field set: fillEvent writes field by field, so a field added to
// Event and forgotten there would leak from one event into the next.
func TestFillEventWritesEveryField(t *testing.T) {
	s := New("fill")
	g := s.Group("sub")
	task := g.Go("named", func(context.Context) error { return nil })
	<-task.Done()

	var stale Event
	v := reflect.ValueOf(&stale).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("stale")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int64, reflect.Int8:
			f.SetInt(7)
		case reflect.Uint64, reflect.Uint8:
			f.SetUint(7)
		case reflect.Slice:
			f.SetBytes([]byte("stale"))
		case reflect.Interface:
			f.Set(reflect.ValueOf(errors.New("stale")))
		case reflect.Struct: // time.Time
			f.Set(reflect.ValueOf(time.Now()))
		default:
			t.Fatalf("Event.%s: kind %s not covered by this test", v.Type().Field(i).Name, f.Kind())
		}
		if f.IsZero() {
			t.Fatalf("Event.%s was not set", v.Type().Field(i).Name)
		}
	}

	task.fillEvent(&stale, KindTaskFinished)
	want := Event{Kind: KindTaskFinished, Group: "fill.sub", GroupID: g.ID(), ParentGroupID: s.ID(), Task: "named", TaskID: task.ID(), Function: stale.Function}
	if !reflect.DeepEqual(stale, want) {
		t.Errorf("fillEvent over a stale event:\n got %+v\nwant %+v", stale, want)
	}
	if stale.Function == "" || stale.Function == "stale" {
		t.Errorf("Function = %q, want fn's name", stale.Function)
	}
}

// TestStoreUnpublished checks what storeUnpublished assumes of
// atomic.Pointer: that it holds the pointer and nothing else.
func TestStoreUnpublished(t *testing.T) {
	var p atomic.Pointer[int]
	if got, want := unsafe.Sizeof(p), unsafe.Sizeof(uintptr(0)); got != want {
		t.Fatalf("atomic.Pointer is %d bytes, not one pointer (%d)", got, want)
	}
	x := 1
	storeUnpublished(&p, &x)
	if p.Load() != &x {
		t.Fatalf("Load after storeUnpublished = %p, want %p", p.Load(), &x)
	}
}
