package migrate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Migrate finds secrets in the upstream free-form places through the one
// classifier (config.SecretPaths) and leaves none of them in plain text.
func TestMigrateFreeFormSecrets(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "moltbot.json")
	plain := []string{"sk-env-openai-plain", "gsk-vars-plain", "brave-tools-plain", "hooks-token-plain", "talk-key-plain"}
	require.NoError(t, os.WriteFile(cfg, []byte(`{
  env: {OPENAI_API_KEY: "sk-env-openai-plain", vars: {GROQ_API_KEY: "gsk-vars-plain"}, shellEnv: {enabled: true}},
  tools: {web: {apiKey: "brave-tools-plain"}},
  hooks: {token: "hooks-token-plain", path: "/hooks"},
  talk: {apiKey: "talk-key-plain"},
}`), 0o600))
	rep, err := Run(context.Background(), Options{StateDir: dir, Encrypter: newBox(t)})
	require.NoError(t, err)
	plan := strings.Join(rep.Actions, "\n")
	for _, p := range []string{"env.OPENAI_API_KEY", "env.vars.GROQ_API_KEY", "tools.web.apiKey", "hooks.token", "talk.apiKey"} {
		require.Contains(t, plan, "moltbot.json: encrypt "+p)
	}
	require.NotContains(t, plan, "hooks.path")
	grepTree(t, dir, plain)
}
