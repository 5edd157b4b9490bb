package telemetry_test

import (
	"regexp"
	"testing"

	"github.com/taskscope/taskscope/telemetry"
)

// semverRE is semver 2.0.0 without the rules on pre-release and build
// identifiers: MAJOR.MINOR.PATCH without leading zeros, then optional
// -pre-release and +build parts.
var semverRE = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

func TestVersionIsSemver(t *testing.T) {
	if !semverRE.MatchString(telemetry.Version) {
		t.Errorf("Version %q is not a semantic version (MAJOR.MINOR.PATCH)", telemetry.Version)
	}
}
