package runtime_test

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeExampleMatchesExample keeps the README's usage example the same
// code as Example, which `go test` compiles and runs.
func TestReadmeExampleMatchesExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "## Usage\n\n```go\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("README has no ```go block under ## Usage")
	}
	_, body, ok := strings.Cut(string(src), "func Example() {\n")
	body, _, ok2 = strings.Cut(body, "\n}\n")
	if !ok || !ok2 {
		t.Fatal("example_test.go has no func Example")
	}
	var dedented []string
	for _, line := range strings.Split(body, "\n") {
		dedented = append(dedented, strings.TrimPrefix(line, "\t"))
	}
	if got, want := strings.TrimSpace(block), strings.TrimSpace(strings.Join(dedented, "\n")); got != want {
		t.Fatalf("README usage example differs from Example:\n--- README\n%s\n--- Example\n%s", got, want)
	}
}
