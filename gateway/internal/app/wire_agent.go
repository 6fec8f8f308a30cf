package app

import (
	"context"
	"fmt"
	"net/url"
	"sync/atomic"

	"github.com/moltbot/moltbot-secure/gateway/internal/agent"
	"github.com/moltbot/moltbot-secure/gateway/internal/configstore"
)

// openaiProvider is the models.providers entry the openai backend reads.
const openaiProvider = "openai"

// wireAgent picks the agent backend from agents.defaults.backend: "echo"
// (the default, wired by wireSandbox) or "openai" (models.providers.openai
// {baseUrl, model, apiKey}, the key decrypted by the config store). Both
// run their exec tool through the session's sandbox routing (w.Executor).
// The choice and the provider settings are taken at start and again on
// every reload, so a new key, model or backend applies without a restart.
func wireAgent(_ context.Context, w *Wiring) error {
	b := &agentBackend{echo: w.Agent}
	b.openai = &agent.OpenAI{Executor: w.Executor, Settings: b.settings}
	b.cur.Store(chooseBackend(w.snapshot()))
	w.Agent = b
	w.Logger.Info("agent", "backend", b.cur.Load().describe())
	w.OnReload = append(w.OnReload, func(_ context.Context, snap *configstore.Snapshot) []string {
		next := chooseBackend(snap)
		prev := b.cur.Swap(next)
		switch {
		case *prev == *next:
			return nil
		case prev.name == next.name && prev.set.BaseURL == next.set.BaseURL && prev.set.Model == next.set.Model:
			return []string{"agent backend " + next.name + ": API key changed"}
		}
		return []string{"agent backend: " + next.describe()}
	})
	return nil
}

// agentBackend is the gateway's Agent: it answers with the backend the
// config chose last.
type agentBackend struct {
	echo   agent.Agent
	openai *agent.OpenAI
	cur    atomic.Pointer[backendChoice]
}

var _ agent.Agent = (*agentBackend)(nil)

func (b *agentBackend) Reply(ctx context.Context, t agent.Turn) (string, error) {
	if b.cur.Load().name == "openai" {
		return b.openai.Reply(ctx, t)
	}
	if b.echo == nil {
		return "", fmt.Errorf("agent backend echo is not wired")
	}
	return b.echo.Reply(ctx, t)
}

func (b *agentBackend) settings() (agent.OpenAISettings, error) { return b.cur.Load().set, nil }

// backendChoice is one reading of the backend config (comparable, so a
// reload can tell what changed). set.APIKey is the plaintext key: never
// log or describe it.
type backendChoice struct {
	name string
	set  agent.OpenAISettings
}

func chooseBackend(snap *configstore.Snapshot) *backendChoice {
	if snap == nil || snap.View.Agents.Backend != "openai" {
		return &backendChoice{name: "echo"}
	}
	p := snap.View.Models[openaiProvider]
	key, _ := snap.Secret("models.providers." + openaiProvider + ".apiKey")
	return &backendChoice{name: "openai", set: agent.OpenAISettings{BaseURL: p.BaseURL, Model: p.Model, APIKey: key}}
}

// describe names the backend for logs and reload replies, without the key.
func (c *backendChoice) describe() string {
	if c.name != "openai" {
		return c.name
	}
	base := c.set.BaseURL
	if u, err := url.Parse(base); err == nil {
		u.User, u.RawQuery = nil, ""
		base = u.String()
	}
	key := "no API key"
	if c.set.APIKey != "" {
		key = "API key set"
	}
	return fmt.Sprintf("openai (model %q at %q, %s)", c.set.Model, base, key)
}
