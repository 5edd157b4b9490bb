package runtime

import "testing"

func TestParseProfileEntry(t *testing.T) {
	entry := "2 @ 0x43a 0x44b\n" +
		`# labels: {"taskscope.group":"runtime.a", "taskscope.group.id":"7", "taskscope.task":"b"}` + "\n" +
		"#\t0x43a\tmain.stuck+0x2c\t\t/home/me/my project/main.go:12\n" +
		"#\t0x44b\tmain.main+0x10\t\t/src/main.go:20\n"
	key, stack, ok := parseProfileEntry(entry)
	if !ok || key != (labelKey{groupID: "7", task: "b"}) {
		t.Fatalf("key %+v, ok %v", key, ok)
	}
	want := `2 goroutine(s) labeled {"taskscope.group":"runtime.a", "taskscope.group.id":"7", "taskscope.task":"b"}:` + "\n" +
		"main.stuck+0x2c\n\t/home/me/my project/main.go:12\n" +
		"main.main+0x10\n\t/src/main.go:20\n"
	if stack != want {
		t.Errorf("stack:\n%s\nwant:\n%s", stack, want)
	}
	if _, _, ok := parseProfileEntry("1 @ 0x43a\n#\t0x43a\tmain.f+0x1\t/src/f.go:1\n"); ok {
		t.Error("a record without labels was parsed")
	}
}

func TestPanicStackKeepsStacksWithoutAPanic(t *testing.T) {
	for _, stack := range []string{"", "goroutine 1 [running]:", "goroutine 1 [running]:\nmain.f()\n\t/src/f.go:1 +0x1\n"} {
		if got := string(panicStack([]byte(stack))); got != stack {
			t.Errorf("panicStack(%q) = %q, want it whole", stack, got)
		}
	}
}
