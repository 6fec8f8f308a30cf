// Package keycmd is `moltbot security key export|import`: back up secretsd's
// keyring sealed under a passphrase, and restore it into a fresh stack.
// Both are owner only at the gateway and recorded in the security log.
package keycmd

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
)

// maxPassphraseFile bounds --passphrase-file; secretsd caps a passphrase at
// 1 KiB, so anything bigger is the wrong file.
const maxPassphraseFile = 4 << 10

// Passphrase gets the passphrase without ever waiting on a stdin that is not
// a terminal: a script with neither a TTY nor --passphrase-file must fail at
// once (exit 2), not hang.
type Passphrase struct {
	// IsTTY reports whether stdin is a terminal; ReadHidden reads one line
	// from it without echo. Tests replace both.
	IsTTY      func() bool
	ReadHidden func() ([]byte, error)
	// Prompt is where prompts go (stderr: stdout may be redirected).
	Prompt io.Writer
}

// TerminalPassphrase reads from the process's stdin terminal.
func TerminalPassphrase() Passphrase {
	fd := int(os.Stdin.Fd())
	return Passphrase{
		IsTTY:      func() bool { return term.IsTerminal(fd) },
		ReadHidden: func() ([]byte, error) { return term.ReadPassword(fd) },
		Prompt:     os.Stderr,
	}
}

// ErrNoPassphrase: neither a terminal nor --passphrase-file.
var ErrNoPassphrase = errors.New("no passphrase: stdin is not a terminal and --passphrase-file is not set; run in a terminal to be prompted, or pass --passphrase-file FILE (the passphrase on its first line, mode 0600)")

// get returns the passphrase from file when set, else from the terminal
// (twice when confirm, and both must match).
func (p Passphrase) get(file string, confirm bool) ([]byte, error) {
	if file != "" {
		return readPassphraseFile(file)
	}
	if p.IsTTY == nil || !p.IsTTY() {
		return nil, &cmdutil.UsageError{Err: ErrNoPassphrase}
	}
	fmt.Fprint(p.Prompt, "Passphrase: ")
	first, err := p.ReadHidden()
	fmt.Fprintln(p.Prompt)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	if len(first) == 0 {
		return nil, &cmdutil.UsageError{Err: errors.New("the passphrase is empty")}
	}
	if !confirm {
		return first, nil
	}
	fmt.Fprint(p.Prompt, "Passphrase again: ")
	second, err := p.ReadHidden()
	fmt.Fprintln(p.Prompt)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	defer clear(second)
	if subtle.ConstantTimeCompare(first, second) != 1 {
		clear(first)
		return nil, &cmdutil.UsageError{Err: errors.New("the two passphrases differ; nothing was exported")}
	}
	return first, nil
}

// readPassphraseFile returns the file's first line (without its line end).
func readPassphraseFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &cmdutil.UsageError{Err: fmt.Errorf("--passphrase-file: %w", err)}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPassphraseFile+1))
	if err != nil {
		return nil, fmt.Errorf("--passphrase-file %s: %w", path, err)
	}
	if len(b) > maxPassphraseFile {
		return nil, &cmdutil.UsageError{Err: fmt.Errorf("--passphrase-file %s: larger than %d bytes; it should hold only the passphrase", path, maxPassphraseFile)}
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return nil, &cmdutil.UsageError{Err: fmt.Errorf("--passphrase-file %s: the first line is empty; put the passphrase on it", path)}
	}
	return b, nil
}

// Deps are what export and import need besides their flags.
type Deps struct {
	// Gateway returns the gateway client (lazily: flag errors never dial).
	Gateway    func() (gatewayv1.GatewayClient, error)
	Passphrase Passphrase
}

// DefaultDeps dials through f and prompts on the process's terminal.
func DefaultDeps(f *cmdutil.Factory) Deps {
	return Deps{
		Gateway: func() (gatewayv1.GatewayClient, error) {
			cc, err := f.Gateway()
			if err != nil {
				return nil, err
			}
			return gatewayv1.NewGatewayClient(cc), nil
		},
		Passphrase: TerminalPassphrase(),
	}
}

// NewCmd returns `moltbot security key` with export and import.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Back up (export) and restore (import) the secrets encryption key"}
	d := DefaultDeps(f)
	cmd.AddCommand(NewExportCmd(f, d, nil), NewImportCmd(f, d, nil))
	return cmd
}
