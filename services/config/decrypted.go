package config

import (
	"fmt"

	"github.com/moltbot/moltbot-secure/services/auth"
)

// Finding ids of the weak-token problem. `config validate` and `security
// audit` report a weak token with these ids and the text of TokenProblem,
// whether the token is plain, behind a reference or encrypted.
const (
	IDTokenShort      = "gateway.auth.token_short"
	IDTokenLowEntropy = "gateway.auth.token_low_entropy"
)

// TokenProblem checks a gateway token against the one rule (auth.CheckToken)
// and describes a failure without the token: its id, message and fix.
// source says where the value came from ("the encrypted token", "${VAR}").
func TokenProblem(tok, source string) (id, msg string, weak bool) {
	if auth.CheckToken(tok) == nil {
		return "", "", false
	}
	n, distinct := auth.Counts(tok)
	id = IDTokenLowEntropy
	if n < auth.MinTokenLength {
		id = IDTokenShort
	}
	msg = fmt.Sprintf("weak token: the rule is at least %d characters with at least %d distinct; %s has %d characters, %d distinct",
		auth.MinTokenLength, auth.MinTokenDistinct, source, n, distinct)
	return id, msg, true
}

// DecryptedChecks runs the config model's checks on values only the gateway
// can see: plain maps the dotted path of each encrypted secret field to its
// decrypted value (from secretsd). It returns the problems found at those
// fields, e.g. a weak encrypted gateway token, a dm policy or memory size
// that only secretsd can reveal. Values behind ${VAR}/${file:...} references
// are checked by Validate once Resolve has run. The gateway's ValidateConfig
// and its security audit both call this, so they report the same problems
// with the same ids and text. No message contains a secret value.
func DecryptedChecks(c *Config, plain map[string]string) []Problem {
	if len(plain) == 0 {
		return nil
	}
	base := c.Resolved
	if base == nil {
		base = c.Raw
	}
	tree, _ := cloneValue(base).(map[string]any)
	if tree == nil {
		return nil
	}
	for p, v := range plain {
		if err := SetIn(tree, splitPath(p), v); err != nil {
			continue // a path that is not in the tree has nothing to check
		}
	}
	d := &Config{File: c.File, Raw: tree, lines: c.lines, schema: c.schema, decrypted: plain}
	var out []Problem
	for _, p := range d.Validate() {
		if _, ok := plain[p.Path]; ok {
			out = append(out, p)
		}
	}
	return out
}
