package telemetry

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/taskscope/taskscope/runtime"
)

// otherLabel replaces label values past the cap.
const otherLabel = "_other"

// labelCap admits the first max distinct values of one label and folds the
// rest into otherLabel. A value's fate never changes: the set only grows
// until it is full, so a value kept once is kept forever and a folded one
// stays folded. That is what keeps a gauge's Inc and Dec on the same series.
type labelCap struct {
	max  int
	mu   sync.Mutex
	kept map[string]struct{}
}

func newLabelCap(max int) *labelCap {
	return &labelCap{max: max, kept: make(map[string]struct{})}
}

// admit returns the label value for raw and whether raw was folded.
// Invalid UTF-8 (a name built from request bytes, an ErrorType method's
// result) is replaced first: client_golang panics on such a label value,
// and the observer would lose the task's metrics and span.
func (c *labelCap) admit(raw string) (label string, folded bool) {
	label = valid(raw)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.kept[label]; ok {
		return label, false
	}
	if len(c.kept) < c.max {
		c.kept[label] = struct{}{}
		return label, false
	}
	return otherLabel, true
}

// seriesCache maps raw (group, task) names to the metric children bound to
// their capped label values, so that the hot path does no WithLabelValues
// lookup (90–155 ns each, against 3–14 ns for a pre-bound child).
//
// Two levels: a direct-mapped array indexed by the names' string data
// pointers (a group's name and a task's literal name are the same strings
// at every event, so a hit is two loads and two pointer compares), then
// two lock-free sync.Map loads by content.
//
// Memory is bounded twice: the series themselves by the label caps, and
// the raw-name entries by a budget. Past the budget, a raw name resolves
// through the mutex every time (still correct, no allocation, slower):
// that only happens to a caller already folding thousands of names.
type seriesCache struct {
	hot            [hotSlots]atomic.Pointer[taskEntry]
	m              *metrics
	groups, tasks  *labelCap
	budget         atomic.Int64 // raw-name entries that may still be cached
	byGroup        sync.Map     // raw group name → *groupEntry
	mu             sync.Mutex   // guards series
	series         map[[2]string]*series
	maxPairs       int // series entries past which new pairs fold their task
	errTypes       *labelCap
	errTypesByName sync.Map // raw error type → errTypeLabel
}

type groupEntry struct {
	tasks sync.Map // raw task name → *taskEntry
}

// hotSlots is the size of the pointer-keyed cache: 8 KiB per Telemetry.
const hotSlots = 1024

// taskEntry is what a raw (group, task) name resolves to.
type taskEntry struct {
	s *series
	// The raw names the entry was made for; their data pointers identify
	// it in the hot cache. Empty in shared entries, which never go there.
	group, task string
	// Whether the raw group or task name was folded into "_other", for the
	// overflow counter, which counts once per spawned task.
	groupFolded, taskFolded bool
	// The names as span attributes take them (valid UTF-8), built once
	// per raw name ("" in shared entries: built per span then, see
	// spanNames). Span names are the series' (see series.taskSpanName).
	spanGroup, spanTask string
}

// spanNames returns the group and task names of ev for span attributes.
func (e *taskEntry) spanNames(ev *runtime.Event) (group, task string) {
	if e.spanTask != "" {
		return e.spanGroup, e.spanTask
	}
	return valid(ev.Group), valid(ev.Task)
}

type errTypeLabel struct {
	label  string
	folded bool
}

func newSeriesCache(m *metrics, maxValues, maxPairs int) *seriesCache {
	c := &seriesCache{
		m:        m,
		maxPairs: maxPairs,
		groups:   newLabelCap(maxValues),
		tasks:    newLabelCap(maxValues),
		errTypes: newLabelCap(maxValues),
		series:   make(map[[2]string]*series),
	}
	c.budget.Store(int64(max(16*maxValues, 4096)))
	return c
}

// entry resolves a task's raw names. spawn says the call is for the task's
// spawn, the one event per task that counts label overflow.
func (c *seriesCache) entry(group, task string, spawn bool) *taskEntry {
	slot := &c.hot[hotIndex(group, task)]
	e := slot.Load()
	if e == nil || !sameString(e.group, group) || !sameString(e.task, task) {
		e = nil
		if g, ok := c.byGroup.Load(group); ok {
			if te, ok := g.(*groupEntry).tasks.Load(task); ok {
				e = te.(*taskEntry)
			}
		}
		if e == nil {
			e = c.resolve(group, task)
		}
		// Only an entry made from these very strings can hit later; names
		// built per spawn would just make the slot thrash.
		if sameString(e.group, group) && sameString(e.task, task) {
			slot.Store(e)
		}
	}
	if spawn {
		if e.groupFolded {
			c.m.overflowGroup.Inc()
		}
		if e.taskFolded {
			c.m.overflowTask.Inc()
		}
	}
	return e
}

// resolve is entry's slow path: a raw name seen for the first time, or any
// name once the budget is spent.
func (c *seriesCache) resolve(group, task string) *taskEntry {
	gl, gf := c.groups.admit(group)
	tl, tf := c.tasks.admit(task)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.series[[2]string{gl, tl}] == nil && tl != otherLabel && len(c.series) >= c.maxPairs {
		// A new pair past the cap. Its fate is fixed as a label value's
		// is: the pair never gets a series, so it folds every time.
		tl, tf = otherLabel, true
	}
	s := c.seriesLocked(gl, tl)
	ge, ok := c.byGroup.Load(group)
	if !ok {
		if c.budget.Add(-1) < 0 {
			return s.shared(gf, tf)
		}
		ge, _ = c.byGroup.LoadOrStore(group, &groupEntry{})
	}
	tasks := &ge.(*groupEntry).tasks
	if te, ok := tasks.Load(task); ok { // raced with another resolve; c.mu makes this the only winner
		return te.(*taskEntry)
	}
	if c.budget.Add(-1) < 0 {
		return s.shared(gf, tf)
	}
	vg, vt := valid(group), valid(task)
	te := &taskEntry{s: s, group: group, task: task, groupFolded: gf, taskFolded: tf, spanGroup: vg, spanTask: vt}
	tasks.Store(task, te)
	return te
}

// seriesLocked returns the children bound to (group, task) label values,
// creating them once.
func (c *seriesCache) seriesLocked(group, task string) *series {
	k := [2]string{group, task}
	s := c.series[k]
	if s == nil {
		s = newSeries(c.m, group, task)
		c.series[k] = s
	}
	return s
}

// hotIndex hashes the names' data pointers (not their bytes: that is the
// point) into a hot cache slot.
func hotIndex(group, task string) uintptr {
	// In uint64, so that it compiles (and mixes the high bits) on 32-bit
	// platforms too, where uintptr cannot hold the constants.
	h := uint64(uintptr(unsafe.Pointer(unsafe.StringData(group))))*0x9E3779B97F4A7C15 ^ uint64(uintptr(unsafe.Pointer(unsafe.StringData(task))))*0xC2B2AE3D27D4EB4F
	return uintptr((h >> 32) % hotSlots)
}

// sameString reports whether a and b are the same non-empty string in
// memory, not merely equal. (Empty strings have no identity, and shared
// entries carry empty names.)
func sameString(a, b string) bool {
	return len(a) > 0 && len(a) == len(b) && unsafe.StringData(a) == unsafe.StringData(b)
}

// groupLabel resolves the group label of a group-level event (cancel,
// shutdown). Those are rare, so it takes the mutex; a folded group counts
// as overflow once per event.
func (c *seriesCache) groupLabel(group string) string {
	l, folded := c.groups.admit(group)
	if folded {
		c.m.overflowGroup.Inc()
	}
	return l
}

// errorTypeLabel caps the error_type label. It runs once per failed task,
// so a folded value is counted each time.
func (c *seriesCache) errorTypeLabel(raw string) string {
	var l errTypeLabel
	if v, ok := c.errTypesByName.Load(raw); ok {
		l = v.(errTypeLabel)
	} else {
		l.label, l.folded = c.errTypes.admit(raw)
		if c.budget.Add(-1) >= 0 {
			c.errTypesByName.Store(raw, l)
		}
	}
	if l.folded {
		c.m.overflowErrorType.Inc()
	}
	return l.label
}
