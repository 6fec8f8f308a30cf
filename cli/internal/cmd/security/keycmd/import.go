package keycmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// maxExportFile bounds --in; an export of a real keyring is a few KiB and
// secretsd refuses more than 2 MiB.
const maxExportFile = 2 << 20

// ImportOptions are the flags of `security key import`.
type ImportOptions struct {
	In             string
	PassphraseFile string
}

// NewImportCmd returns `moltbot security key import`.
func NewImportCmd(f *cmdutil.Factory, d Deps, runF func(*ImportOptions) error) *cobra.Command {
	o := &ImportOptions{}
	cmd := &cobra.Command{
		Use:   "import --in FILE [--passphrase-file F]",
		Short: "Restore a keyring written by `security key export` into a fresh stack (owner only)",
		Long: `Replaces secretsd's keyring with the one sealed in FILE. secretsd refuses
once its own keyring has encrypted or decrypted any secret (other than the
gateway's internal data), since that secret would be lost: import into a fresh
stack first, then restore the config. The old key file is kept as a backup.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if o.In == "" {
				return &cmdutil.UsageError{Err: errors.New("--in FILE is required (the file `moltbot security key export` wrote)")}
			}
			if runF != nil {
				return runF(o)
			}
			return runImport(c.Context(), f, d, o)
		},
	}
	cmd.Flags().StringVar(&o.In, "in", "", "the sealed keyring written by `security key export`")
	cmd.Flags().StringVar(&o.PassphraseFile, "passphrase-file", "", "read the passphrase from the first line of this file instead of prompting")
	return cmd
}

func readExport(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, &cmdutil.UsageError{Err: fmt.Errorf("--in: %w", err)}
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxExportFile+1))
	if err != nil {
		return nil, fmt.Errorf("--in %s: %w", path, err)
	}
	if len(b) > maxExportFile {
		return nil, &cmdutil.UsageError{Err: fmt.Errorf("--in %s: larger than %d bytes, so not a key export", path, maxExportFile)}
	}
	return b, nil
}

func runImport(ctx context.Context, f *cmdutil.Factory, d Deps, o *ImportOptions) error {
	sealed, err := readExport(o.In)
	if err != nil {
		return err
	}
	pass, err := d.Passphrase.get(o.PassphraseFile, false)
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
	resp, err := gw.ImportKey(ctx, &gatewayv1.ImportKeyRequest{Sealed: sealed, Passphrase: pass})
	if err != nil {
		return errs.FromStatus(err)
	}
	if f.JSON {
		return f.PrintJSON(resp)
	}
	fmt.Fprintf(f.Out, "imported the keyring (%d key(s), primary %s); secretsd kept its previous key file at %s\n", len(resp.GetKeys()), resp.GetPrimaryKid(), resp.GetBackupPath())
	fmt.Fprintln(f.Out, "secrets sealed under it decrypt again: put the old moltbot.json back and run `moltbot gateway restart`")
	return nil
}
