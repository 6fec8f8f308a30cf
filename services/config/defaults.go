package config

import "encoding/json"

// Default is the phase-1 config a new stack starts from (the init service
// writes it when the gateway has none): the documented defaults written
// out, so an operator sees and edits them instead of guessing. It has no
// token field: the gateway reads $CLAWDBOT_GATEWAY_TOKEN_FILE (the
// bootstrap token certs init made) until `gateway.auth.token` is set. The
// values are the View defaults (first of each enumeration), not copies.
func Default() map[string]any {
	return map[string]any{
		"version": CurrentVersion,
		"gateway": map[string]any{
			"auth": map[string]any{"mode": AuthModes[0]},
		},
		"channels": map[string]any{
			"local": map[string]any{"dmPolicy": DMPolicies[0], "groupPolicy": GroupPolicies[0]},
		},
		"agents": map[string]any{
			"defaults": map[string]any{
				"sandbox": map[string]any{"mode": SandboxModes[0]},
			},
		},
		"logging": map[string]any{"redactSensitive": defaultRedact},
	}
}

// defaultRedact is logging.redactSensitive's default (View: "tools").
const defaultRedact = "tools"

// DefaultFile is Default as the file's bytes (indented JSON, newline).
func DefaultFile() ([]byte, error) {
	b, err := json.MarshalIndent(Default(), "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
