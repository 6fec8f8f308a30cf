package app

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/moltbot/moltbot-secure/gateway/internal/configstore"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/client"
)

// Token sources, in order of precedence.
const (
	EnvToken     = "CLAWDBOT_GATEWAY_TOKEN"
	EnvTokenFile = "CLAWDBOT_GATEWAY_TOKEN_FILE"
)

// CheckEnvToken refuses a weak $CLAWDBOT_GATEWAY_TOKEN at once: it wins
// over every other source, so it can be judged before any dependency is
// contacted (secretsd may be down for 15 s before the config can be read).
// The rule is auth.CheckToken's, as for the other sources after the load.
func CheckEnvToken() error {
	t := strings.TrimSpace(os.Getenv(EnvToken))
	if t == "" {
		return nil
	}
	if err := auth.CheckToken(t); err != nil {
		return fmt.Errorf("gateway token from $%s: %w", EnvToken, err)
	}
	return nil
}

// LoadToken finds the gateway token: $CLAWDBOT_GATEWAY_TOKEN, else
// gateway.auth.token in the loaded config (plain, a reference, or an
// envelope already decrypted through secretsd), else the file named by
// $CLAWDBOT_GATEWAY_TOKEN_FILE (the bootstrap token `certs init` writes).
// It returns the token and a description of its source (never the token).
// The strength rule is checked by the caller (auth.CheckToken).
func LoadToken(snap *configstore.Snapshot, cfgPath string) (string, string, error) {
	if t := strings.TrimSpace(os.Getenv(EnvToken)); t != "" {
		return t, "$" + EnvToken, nil
	}
	if t, ok := snap.Secret("gateway.auth.token"); ok && strings.TrimSpace(t) != "" {
		return strings.TrimSpace(t), cfgPath + ": gateway.auth.token", nil
	}
	if f := os.Getenv(EnvTokenFile); f != "" {
		t, err := client.ReadToken(f)
		if err != nil {
			return "", "", fmt.Errorf("$%s: %w", EnvTokenFile, err)
		}
		return t, "$" + EnvTokenFile, nil
	}
	return "", "", errors.New("no gateway token: gateway auth is required on every connection; set " + EnvToken +
		" or gateway.auth.token (generate one with `moltbot token generate`, then `moltbot config set gateway.auth.token -`)")
}
