//go:build moltbot_insecure_testonly

package app

import (
	"os"

	"github.com/moltbot/moltbot-secure/services/auth"
)

// testOnlyVerifier, in this test-only build, accepts every caller when
// MOLTBOT_TESTONLY_DISABLE_AUTH=1: it simulates a misconfigured gateway so
// the integration tests can prove `security audit --deep` reports it.
func testOnlyVerifier(v auth.Verifier) auth.Verifier {
	if os.Getenv("MOLTBOT_TESTONLY_DISABLE_AUTH") != "1" {
		return v
	}
	return acceptAll{}
}

type acceptAll struct{}

func (acceptAll) Verify(certID, _ string) (string, uint64, bool) {
	if certID == auth.IDCLI {
		return auth.RoleOwner, 0, true
	}
	return auth.RoleClient, 0, true
}
