package runtime

import (
	"context"
	"fmt"

	"github.com/moltbot/moltbot-secure/gateway/internal/agent"
	"github.com/moltbot/moltbot-secure/services/config"
)

// Backend is one reading of agents.defaults.backend and its provider.
// Set.APIKey is the plaintext key: never log or describe it.
type Backend struct {
	Name string
	Set  agent.OpenAISettings
}

// ChooseBackend reads agents.defaults.backend: "echo" (the default) or
// "openai" (models.providers.openai {baseUrl, model, apiKey}); the key
// comes through secret.
func ChooseBackend(ctx context.Context, v config.View, secret SecretFunc) (Backend, error) {
	if v.Agents.Backend != "openai" {
		return Backend{Name: "echo"}, nil
	}
	p := v.Models[OpenAIProvider]
	b := Backend{Name: "openai", Set: agent.OpenAISettings{BaseURL: p.BaseURL, Model: p.Model}}
	if p.APIKey.IsSet() {
		k, err := secret(ctx, p.APIKey)
		if err != nil {
			return Backend{}, fmt.Errorf("agent backend openai: %w", err)
		}
		b.Set.APIKey = k
	}
	return b, nil
}

func (b Backend) public() string { return b.Name + "|" + b.Set.BaseURL + "|" + b.Set.Model }

func (b Backend) key() string { return b.public() + "|" + fingerprint(b.Set.APIKey) }

// Describe names the backend for logs and reload replies, without the key.
func (b Backend) Describe() string {
	if b.Name != "openai" {
		return b.Name
	}
	key := "no API key"
	if b.Set.APIKey != "" {
		key = "API key set"
	}
	return fmt.Sprintf("openai (model %q%s, %s)", b.Set.Model, endpoint(b.Set.BaseURL), key)
}

func (b Backend) agent(d Deps) agent.Agent {
	if b.Name == "openai" {
		set := b.Set
		return &agent.OpenAI{Executor: d.Executor, Settings: func() (agent.OpenAISettings, error) { return set, nil }}
	}
	if d.Echo == nil {
		return nil
	}
	return d.Echo
}
