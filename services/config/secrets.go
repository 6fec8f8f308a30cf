package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/moltbot/moltbot-secure/services/envelope"
)

// SecretState is what a secret field holds.
type SecretState string

const (
	StatePlain       SecretState = "plaintext"
	StateEnvelope    SecretState = "envelope"
	StateReference   SecretState = "reference"
	StateEmpty       SecretState = "empty"
	StateBadEnvelope SecretState = "bad-envelope" // has "$enc" but fails validation
	StateWrongType   SecretState = "wrong-type"
)

// SecretRef is one present secret field.
type SecretRef struct {
	// Path is the dotted path shown to users.
	Path string
	// Keys addresses the value in its tree (use SetIn).
	Keys []string
	// AAD binds the value to its place: the dotted path in moltbot.json,
	// "auth-profiles/<agent>/<profile>.<field>" in an auth-profiles file.
	AAD   string
	State SecretState
	// Value is the raw value (a string, or an envelope object).
	Value any
}

// StateOf classifies a secret field's value.
func StateOf(v any) SecretState {
	switch t := v.(type) {
	case string:
		switch {
		case t == "":
			return StateEmpty
		case IsReference(t):
			return StateReference
		}
		return StatePlain
	case map[string]any:
		if !envelope.IsEnvelope(t) {
			return StateWrongType
		}
		if _, err := envelope.FromMap(t); err != nil {
			return StateBadEnvelope
		}
		return StateEnvelope
	}
	return StateWrongType
}

// SecretPaths lists every secret field present in a moltbot.json tree,
// sorted by path.
func SecretPaths(tree map[string]any) []SecretRef {
	var out []SecretRef
	var walk func(v any, n *node, keys []string)
	walk = func(v any, n *node, keys []string) {
		switch n.kind {
		case kSecret:
			p := strings.Join(keys, ".")
			out = append(out, SecretRef{Path: p, Keys: append([]string(nil), keys...), AAD: p, State: StateOf(v), Value: v})
		case kObject:
			m, ok := v.(map[string]any)
			if !ok {
				return
			}
			for k, e := range m {
				if c := n.child(k); c != nil {
					walk(e, c, append(keys, k))
				}
			}
		case kMap:
			m, ok := v.(map[string]any)
			if !ok {
				return
			}
			for k, e := range m {
				walk(e, n.elem, append(keys, k))
			}
		case kList:
			a, ok := v.([]any)
			if !ok {
				return
			}
			for i, e := range a {
				walk(e, n.elem, append(keys, strconv.Itoa(i)))
			}
		}
	}
	walk(tree, schema(), nil)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// AuthProfileSecretFields are the secret keys of one profile in
// agents/<id>/agent/auth-profiles.json (API keys, tokens, OAuth tokens).
var AuthProfileSecretFields = []string{"key", "apiKey", "token", "access", "refresh"}

// AuthProfilesFile is the path of an agent's auth profiles, relative to the
// state dir.
func AuthProfilesFile(agentID string) string {
	return "agents/" + agentID + "/agent/auth-profiles.json"
}

// AuthProfileAAD binds a profile field's ciphertext to its agent, profile and
// field, so moving it to another profile or agent fails to decrypt.
func AuthProfileAAD(agentID, profile, field string) string {
	return "auth-profiles/" + agentID + "/" + profile + "." + field
}

// AuthProfileSecrets lists the secret fields in an auth-profiles.json tree:
// {"profiles":{"<profile>":{"key":"..."}}} (upstream layout), sorted.
func AuthProfileSecrets(agentID string, tree map[string]any) []SecretRef {
	profiles, _ := tree["profiles"].(map[string]any)
	var out []SecretRef
	for name, pv := range profiles {
		p, ok := pv.(map[string]any)
		if !ok {
			continue
		}
		for _, f := range AuthProfileSecretFields {
			v, ok := p[f]
			if !ok {
				continue
			}
			out = append(out, SecretRef{
				Path:  "profiles." + name + "." + f,
				Keys:  []string{"profiles", name, f},
				AAD:   AuthProfileAAD(agentID, name, f),
				State: StateOf(v),
				Value: v,
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// EnvelopeText returns the JSON text of an envelope-valued secret (the form
// the secretsd RPCs take).
func (r SecretRef) EnvelopeText() (string, bool) {
	m, ok := r.Value.(map[string]any)
	if !ok || r.State != StateEnvelope {
		return "", false
	}
	e, err := envelope.FromMap(m)
	if err != nil {
		return "", false
	}
	text, err := e.Encode()
	return text, err == nil
}

// EnvelopeValue converts envelope JSON text (from secretsd) into the object
// stored in a tree.
func EnvelopeValue(text string) (map[string]any, error) {
	e, err := envelope.Decode(text)
	if err != nil {
		return nil, err
	}
	return e.Map(), nil
}

// SealSecrets replaces every plaintext secret among refs with the envelope
// returned by seal (secretsd's Encrypt), in tree. References, envelopes and
// empty values are left alone. It returns the paths sealed. On error tree may
// be partly sealed: callers work on a Clone and write only on success.
func SealSecrets(tree map[string]any, refs []SecretRef, seal func(plaintext []byte, aad string) (string, error)) ([]string, error) {
	var done []string
	for _, r := range refs {
		if r.State != StatePlain {
			continue
		}
		text, err := seal([]byte(r.Value.(string)), r.AAD)
		if err != nil {
			return done, fmt.Errorf("encrypt %s: %w", r.Path, err)
		}
		v, err := EnvelopeValue(text)
		if err != nil {
			return done, fmt.Errorf("encrypt %s: %w", r.Path, err)
		}
		if err := SetIn(tree, r.Keys, v); err != nil {
			return done, err
		}
		done = append(done, r.Path)
	}
	return done, nil
}
