//go:build !moltbot_insecure_testonly

package app

import "github.com/moltbot/moltbot-secure/services/auth"

// testOnlyVerifier is the identity in every real build. The insecure
// variant (build tag moltbot_insecure_testonly, never shipped) exists so
// the audit's --deep probe can be shown to catch a gateway without auth.
func testOnlyVerifier(v auth.Verifier) auth.Verifier { return v }
