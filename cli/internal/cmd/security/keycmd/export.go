package keycmd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/atomicfile"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// ExportOptions are the flags of `security key export`.
type ExportOptions struct {
	Out            string
	PassphraseFile string
	Force          bool
}

// NewExportCmd returns `moltbot security key export`.
func NewExportCmd(f *cmdutil.Factory, d Deps, runF func(*ExportOptions) error) *cobra.Command {
	o := &ExportOptions{}
	cmd := &cobra.Command{
		Use:   "export --out FILE [--passphrase-file F]",
		Short: "Write the secrets keyring, sealed under a passphrase (age), to FILE (owner only)",
		Long: `Asks secretsd to seal its whole keyring under a passphrase (age, scrypt) and
writes only that ciphertext to FILE (mode 0600, atomically). Without the key
nothing encrypted can be read again: keep FILE and the passphrase apart, off
this machine. The passphrase is prompted twice on a terminal, or read from the
first line of --passphrase-file; with neither, the command exits 2 at once.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if o.Out == "" {
				return &cmdutil.UsageError{Err: errors.New("--out FILE is required (where to write the sealed key)")}
			}
			if runF != nil {
				return runF(o)
			}
			return runExport(c.Context(), f, d, o)
		},
	}
	cmd.Flags().StringVar(&o.Out, "out", "", "file to write the sealed keyring to (0600)")
	cmd.Flags().StringVar(&o.PassphraseFile, "passphrase-file", "", "read the passphrase from the first line of this file instead of prompting")
	cmd.Flags().BoolVar(&o.Force, "force", false, "overwrite FILE if it exists")
	return cmd
}

func runExport(ctx context.Context, f *cmdutil.Factory, d Deps, o *ExportOptions) error {
	if !o.Force {
		if _, err := os.Lstat(o.Out); err == nil {
			return &cmdutil.UsageError{Err: fmt.Errorf("--out %s exists; it may be an older backup: choose another name, or pass --force to replace it", o.Out)}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("--out %s: %w", o.Out, err)
		}
	}
	pass, err := d.Passphrase.get(o.PassphraseFile, true)
	if err != nil {
		return err
	}
	defer clear(pass)
	gw, err := d.Gateway()
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	resp, err := gw.ExportKey(ctx, &gatewayv1.ExportKeyRequest{Passphrase: pass})
	if err != nil {
		return errs.FromStatus(err)
	}
	if err := atomicfile.WriteFile(o.Out, resp.GetSealed(), 0o600); err != nil {
		return err
	}
	if f.JSON {
		return f.PrintJSON(map[string]any{"out": o.Out, "primary_kid": resp.GetPrimaryKid(), "keys": len(resp.GetKeys())})
	}
	fmt.Fprintf(f.Out, "wrote the keyring (%d key(s), primary %s), sealed under your passphrase, to %s\n", len(resp.GetKeys()), resp.GetPrimaryKid(), o.Out)
	fmt.Fprintln(f.Out, "keep it and the passphrase apart, off this machine; restore with `moltbot security key import --in FILE` on a fresh stack")
	return nil
}
