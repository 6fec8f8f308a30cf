package config

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	"github.com/moltbot/moltbot-secure/cli/internal/offline"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/statedir"
)

// ValidateOptions are the flags of `config validate`.
type ValidateOptions struct {
	// File validates this file offline instead of the state dir's config.
	File string
	// Offline skips the gateway even when it is up.
	Offline bool
}

func newCmdValidate(f *cmdutil.Factory, runF func(*ValidateOptions) error) *cobra.Command {
	o := &ValidateOptions{}
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check moltbot.json; works offline on the state dir when the gateway is down (exit 1 on errors)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(o)
			}
			return validateRun(c.Context(), f, o)
		},
	}
	cmd.Flags().StringVar(&o.File, "file", "", "validate this file (offline) instead of <state-dir>/moltbot.json")
	cmd.Flags().BoolVar(&o.Offline, "offline", false, "validate on the state dir without asking the gateway (envelopes are not decrypted)")
	return cmd
}

type result struct {
	Source   string               `json:"source"`
	File     string               `json:"file,omitempty"`
	Valid    bool                 `json:"valid"`
	Problems []*gatewayv1.Problem `json:"problems"`
}

func validateRun(ctx context.Context, f *cmdutil.Factory, o *ValidateOptions) error {
	var r result
	online := false
	if o.File == "" && !o.Offline {
		cc, err := f.Gateway()
		if err == nil {
			ctx, cancel := withTimeout(ctx)
			defer cancel()
			resp, rerr := gatewayv1.NewGatewayClient(cc).ValidateConfig(ctx, &gatewayv1.ValidateConfigRequest{})
			switch {
			case rerr == nil:
				r = result{Source: "gateway", Valid: resp.GetValid(), Problems: resp.GetProblems()}
				online = true
			case !offline.GatewayDown(rerr):
				return errs.FromStatus(rerr)
			}
		}
	}
	if !online {
		path := o.File
		if path == "" {
			dir, err := f.StateDir()
			if err != nil {
				return err
			}
			if err := offline.StackDown(dir); err != nil {
				return err
			}
			path = statedir.ConfigPath(dir)
		}
		// On the state dir, secretsd (when reachable) opens the encrypted
		// values for the checks that need them, as the gateway does.
		var dec decrypter
		if o.File == "" {
			if sc, serr := offline.Secrets(f, offline.DefaultSecretsdAddr()); serr == nil {
				defer sc.Close()
				dec = sc
			}
		}
		ps, checked, err := validateFile(ctx, path, dec)
		if err != nil {
			return err
		}
		r = result{Source: "offline", File: path, Valid: len(config.Errors(ps)) == 0}
		for _, p := range ps {
			r.Problems = append(r.Problems, &gatewayv1.Problem{Path: p.Path, Message: p.Message, Fix: p.Fix, Severity: string(p.Severity), File: p.File, Line: int32(p.Line), Id: p.ID})
		}
		if !f.JSON && o.File == "" {
			note := "encrypted values not checked against secretsd"
			if checked {
				note = "encrypted values checked through secretsd"
			}
			fmt.Fprintf(f.Err, "gateway not reachable: validated %s offline (%s)\n", path, note)
		}
	}
	nerr := 0
	for _, p := range r.Problems {
		if p.GetSeverity() == string(config.SevError) {
			nerr++
		}
	}
	if f.JSON {
		if r.Problems == nil {
			r.Problems = []*gatewayv1.Problem{}
		}
		if err := f.PrintJSON(r); err != nil {
			return err
		}
	} else {
		for _, p := range r.Problems {
			fmt.Fprintln(f.Out, problemString(p))
		}
		if nerr == 0 {
			fmt.Fprintf(f.Out, "config is valid (%d warning(s))\n", len(r.Problems))
		}
	}
	if nerr > 0 {
		return fmt.Errorf("config has %d error(s)", nerr)
	}
	return nil
}

// validateFile parses, resolves and validates a config file locally. A
// syntax error is one problem naming file, line and column.
func validateFile(ctx context.Context, path string, dec decrypter) (ps []config.Problem, checked bool, err error) {
	c, err := config.Load(path)
	if err != nil {
		var pe *config.ParseError
		if errors.As(err, &pe) {
			return []config.Problem{{File: pe.File, Line: pe.Line, Path: "(syntax)", Message: pe.Error(), Severity: config.SevError,
				Fix: "fix the syntax: the file must be a JSON5 object"}}, false, nil
		}
		return nil, false, err
	}
	var out []config.Problem
	if err := c.Resolve(config.ResolveOptions{StateDir: config.StateDirOf(path)}); err != nil {
		out = append(out, config.Problem{File: path, Path: "(references)", Message: err.Error(), Severity: config.SevError,
			Fix: "set the environment variable or fix the file reference"})
	}
	out = append(out, c.Validate()...)
	if dec == nil {
		return out, false, nil
	}
	plain, bad, ok := decryptAll(ctx, c, dec)
	if !ok {
		return out, false, nil // secretsd unreachable: the note says so
	}
	out = append(out, bad...)
	return append(out, config.DecryptedChecks(c, plain)...), true, nil
}

// decrypter opens an envelope for its field (offline.Client).
type decrypter interface {
	Decrypt(ctx context.Context, env, aad string) ([]byte, error)
}

// decryptAll opens every envelope in c for config.DecryptedChecks. A field
// that does not open is a problem naming it; ok is false when secretsd
// cannot be reached at all.
func decryptAll(ctx context.Context, c *config.Config, dec decrypter) (plain map[string]string, bad []config.Problem, ok bool) {
	plain = map[string]string{}
	for _, r := range config.SecretPaths(c.Raw) {
		text, isEnv := r.EnvelopeText()
		if r.State != config.StateEnvelope || !isEnv {
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		pt, err := dec.Decrypt(dctx, text, r.AAD)
		cancel()
		if errors.Is(err, errs.ErrUnavailable) {
			return nil, nil, false
		}
		if err != nil {
			bad = append(bad, config.Problem{File: c.File, Line: c.Line(r.Path), Path: r.Path, Message: "does not decrypt for its field: " + err.Error(),
				Severity: config.SevError, Fix: "moltbot config set " + r.Path + " -"})
			continue
		}
		plain[r.Path] = string(pt)
	}
	return plain, bad, true
}

func problemString(p *gatewayv1.Problem) string {
	loc := p.GetFile()
	if p.GetLine() > 0 {
		loc += ":" + strconv.Itoa(int(p.GetLine()))
	}
	s := fmt.Sprintf("%s: %s: %s: %s", loc, p.GetSeverity(), p.GetPath(), p.GetMessage())
	if p.GetId() != "" {
		s += " [" + p.GetId() + "]" // the security audit's finding id for the same problem
	}
	if p.GetFix() != "" {
		s += " (fix: " + p.GetFix() + ")"
	}
	return s
}
