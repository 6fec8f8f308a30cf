package config

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// SetOptions are the flags of `config set`.
type SetOptions struct {
	Path   string
	Value  string
	String bool
	Unset  bool
	// Stdin is read when the value is "-" (tests replace it).
	Stdin io.Reader
}

func newCmdSet(f *cmdutil.Factory, runF func(*SetOptions) error) *cobra.Command {
	o := &SetOptions{Stdin: os.Stdin}
	cmd := &cobra.Command{
		Use:   "set PATH VALUE|-",
		Short: "Change a config value; secret fields are encrypted through secretsd (use - to read the value from stdin)",
		Long: "Change a config value. Secret fields (tokens, API keys) are encrypted through secretsd before they are\n" +
			"written; the old file is kept as a sealed backup (moltbot.json.backup, `moltbot rollback` restores it).\n" +
			"Give a secret as - and pipe it in, so it stays out of your shell history. References such as ${VAR}\n" +
			"or ${file:NAME} (a file put with `moltbot secrets put-file`, beneath secrets.fileRoots) are stored as\n" +
			"written and resolved when the gateway loads the config.",
		Args: func(c *cobra.Command, args []string) error {
			if o.Unset {
				return cobra.ExactArgs(1)(c, args)
			}
			return cobra.ExactArgs(2)(c, args)
		},
		RunE: func(c *cobra.Command, args []string) error {
			o.Path = args[0]
			if len(args) > 1 {
				o.Value = args[1]
			}
			if runF != nil {
				return runF(o)
			}
			return setRun(c.Context(), f, o)
		},
	}
	cmd.Flags().BoolVar(&o.String, "string", false, "store the value as a string even if it looks like a number, boolean or JSON")
	cmd.Flags().BoolVar(&o.Unset, "unset", false, "remove PATH instead (no VALUE)")
	return cmd
}

// readValue returns the value, reading stdin for "-" (one trailing newline
// is dropped, as `echo` and heredocs add it).
func readValue(o *SetOptions) (string, error) {
	if o.Value != "-" {
		return o.Value, nil
	}
	// Read one byte past the limit so an over-long value is an error, never
	// silently cut (the gateway enforces the same limit).
	b, err := config.ReadBounded(o.Stdin, config.Text{Where: "config set " + o.Path, Noun: "value on stdin", MaxBytes: config.MaxValueBytes})
	if err != nil {
		return "", err
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if v == "" {
		return "", &cmdutil.UsageError{Err: fmt.Errorf("the value on stdin is empty (to remove %s use --unset)", o.Path)}
	}
	return v, nil
}

func setRun(ctx context.Context, f *cmdutil.Factory, o *SetOptions) error {
	v, err := readValue(o)
	if err != nil {
		return err
	}
	cc, err := f.Gateway()
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	resp, err := gatewayv1.NewGatewayClient(cc).SetConfig(ctx, &gatewayv1.SetConfigRequest{Path: o.Path, Value: v, ValueIsString: o.String, Unset: o.Unset})
	if err != nil {
		return errs.FromStatus(err)
	}
	if f.JSON {
		return f.PrintJSON(resp)
	}
	// Never echo the value: it may be a secret.
	verb := "set"
	if o.Unset {
		verb = "removed"
	}
	fmt.Fprintln(f.Out, setReply(verb, o.Path, resp.GetEncrypted(), resp.GetEncryptedPaths()))
	if resp.GetBackupPath() != "" {
		fmt.Fprintf(f.Err, "previous config kept as %s (sealed under the secrets key; `moltbot rollback` restores it)\n", resp.GetBackupPath())
	}
	for _, w := range resp.GetWarnings() {
		fmt.Fprintln(f.Err, problemString(w))
	}
	return nil
}

// setReply says what was set and which secrets the write encrypted: the
// field itself, and every other plaintext secret the file held.
func setReply(verb, path string, encrypted bool, sealed []string) string {
	msg := fmt.Sprintf("%s %s", verb, path)
	var others []string
	self := false
	for _, p := range sealed {
		if p == path || strings.HasPrefix(p, path+".") {
			self = true
			continue
		}
		others = append(others, p)
	}
	if self || (encrypted && len(sealed) == 0) {
		msg += " (encrypted through secretsd)"
	}
	if len(others) > 0 {
		noun := "secrets"
		if len(others) == 1 {
			noun = "secret"
		}
		msg += fmt.Sprintf("\nencrypted %d plaintext %s: %s", len(others), noun, strings.Join(others, ", "))
	}
	return msg
}
