package telemetry_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsNoSDK: the library uses the OpenTelemetry API only; the SDK
// (and the diagnostics package) are for applications and tests.
func TestImportsNoSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "go.opentelemetry.io/otel/sdk") || pkg == "github.com/taskscope/taskscope/diagnostics" {
			t.Errorf("telemetry depends on %s", pkg)
		}
	}
}
