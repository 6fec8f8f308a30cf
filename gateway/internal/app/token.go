package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moltbot/moltbot-secure/services/client"
	"github.com/moltbot/moltbot-secure/services/statedir"
)

// Token sources, in order of precedence.
const (
	EnvToken     = "CLAWDBOT_GATEWAY_TOKEN"
	EnvTokenFile = "CLAWDBOT_GATEWAY_TOKEN_FILE"
)

func configPath(stateDir string) string { return statedir.ConfigPath(stateDir) }

// LoadToken finds the gateway token: $CLAWDBOT_GATEWAY_TOKEN, else
// gateway.auth.token in the config, else the file named by
// $CLAWDBOT_GATEWAY_TOKEN_FILE (the bootstrap token `certs init` writes).
// It returns the token and a description of its source (never the token).
func LoadToken(stateDir, cfgPath, pkiDir string) (string, string, error) {
	if t := strings.TrimSpace(os.Getenv(EnvToken)); t != "" {
		return t, "$" + EnvToken, nil
	}
	if t, ok, err := tokenFromConfig(stateDir, cfgPath); err != nil {
		return "", "", err
	} else if ok {
		return t, cfgPath + ": gateway.auth.token", nil
	}
	if f := os.Getenv(EnvTokenFile); f != "" {
		t, err := client.ReadToken(f)
		if err != nil {
			return "", "", fmt.Errorf("$%s: %w", EnvTokenFile, err)
		}
		return t, "$" + EnvTokenFile, nil
	}
	return "", "", errors.New("no gateway token: gateway auth is required on every connection; set " + EnvToken +
		" or gateway.auth.token (generate one with `moltbot token generate`, or run `moltbot security audit --fix`)")
}

func tokenFromConfig(stateDir, cfgPath string) (string, bool, error) {
	b, err := os.ReadFile(cfgPath)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read config %s: %w", cfgPath, err)
	}
	var c struct {
		Gateway struct {
			Auth struct {
				Token any `json:"token"`
			} `json:"auth"`
		} `json:"gateway"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", false, fmt.Errorf("parse config %s: %w", cfgPath, err)
	}
	switch v := c.Gateway.Auth.Token.(type) {
	case nil:
		return "", false, nil
	case string:
		t, err := resolveRef(stateDir, v)
		return t, err == nil, err
	default:
		return "", false, fmt.Errorf("config %s: gateway.auth.token: encrypted values need secretsd", cfgPath)
	}
}

func resolveRef(stateDir, v string) (string, error) {
	if !strings.HasPrefix(v, "${") || !strings.HasSuffix(v, "}") {
		return v, nil
	}
	ref := v[2 : len(v)-1]
	if f, ok := strings.CutPrefix(ref, "file:"); ok {
		if !filepath.IsAbs(f) {
			f = filepath.Join(stateDir, f)
		}
		return client.ReadToken(f)
	}
	t := os.Getenv(ref)
	if t == "" {
		return "", fmt.Errorf("gateway.auth.token references $%s, which is not set", ref)
	}
	return t, nil
}
