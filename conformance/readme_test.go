package conformance_test

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeExamples keeps the README's code blocks the same code as the
// runnable examples that `go test` compiles and checks.
func TestReadmeExamples(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ section, file, fn string }{
		{"## Usage", "../runtime/example_test.go", "func Example() {"},
		{"## Observability", "example_test.go", "func Example_observability() {"},
	}
	for _, tt := range tests {
		t.Run(tt.section, func(t *testing.T) {
			want := exampleBody(t, tt.file, tt.fn)
			_, section, ok := strings.Cut(string(readme), tt.section+"\n")
			_, block, ok2 := strings.Cut(section, "```go\n")
			block, _, ok3 := strings.Cut(block, "```")
			if !ok || !ok2 || !ok3 {
				t.Fatalf("README has no ```go block under %s", tt.section)
			}
			if got := strings.TrimSpace(block); !strings.HasPrefix(want, got) {
				t.Fatalf("README block under %s is not the start of %s in %s:\n--- README\n%s\n--- example\n%s", tt.section, tt.fn, tt.file, got, want)
			}
		})
	}
}

// exampleBody returns the body of the function that starts with fn in
// file, dedented one tab.
func exampleBody(t *testing.T, file, fn string) string {
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(string(src), fn+"\n")
	body, _, ok2 := strings.Cut(body, "\n}\n")
	if !ok || !ok2 {
		t.Fatalf("%s has no %s", file, fn)
	}
	var lines []string
	for _, line := range strings.Split(body, "\n") {
		lines = append(lines, strings.TrimPrefix(line, "\t"))
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}
