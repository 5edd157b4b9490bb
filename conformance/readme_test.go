package conformance_test

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeExamples keeps the README's code blocks the same code as the
// runnable examples that `go test` compiles and checks: each block is the
// whole body of its example, or the part before a "// README block ends
// here." line in it. Every go block of the README must be one of them.
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
			want, _, _ = strings.Cut(want, readmeEnd)
			if got, want := strings.TrimSpace(block), strings.TrimSpace(want); got != want {
				t.Fatalf("README block under %s differs from %s in %s:\n--- README\n%s\n--- example\n%s", tt.section, tt.fn, tt.file, got, want)
			}
		})
	}
	if n := strings.Count(string(readme), "```go\n"); n != len(tests) {
		t.Errorf("README has %d go blocks; %d are checked against examples", n, len(tests))
	}
}

// readmeEnd marks where an example stops being the README's block.
const readmeEnd = "// README block ends here."

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
