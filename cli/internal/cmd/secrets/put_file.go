package secrets

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// PutFileOptions are the flags of `secrets put-file`.
type PutFileOptions struct {
	Name string
	From string // a file, or "-" for stdin
	// Stdin is read for "-" (tests replace it).
	Stdin  io.Reader
	Client func() (gatewayv1.GatewayClient, error)
}

func newCmdPutFile(f *cmdutil.Factory, runF func(*PutFileOptions) error) *cobra.Command {
	o := &PutFileOptions{Stdin: os.Stdin, Client: gatewayClient(f)}
	cmd := &cobra.Command{
		Use:   "put-file NAME [--from FILE|-]",
		Short: "Store a file for ${file:NAME} references (owner only; at most 1 MiB)",
		Long: "Store a file in the secret-files volume, which the gateway mounts read-only at /secret-files.\n" +
			"secretsd writes it (0640, atomically); refer to it in the config as ${file:NAME}, e.g.\n" +
			"  moltbot secrets put-file openai.key --from ./openai.key\n" +
			"  moltbot config set models.providers.openai.apiKey '${file:openai.key}' --string\n" +
			"NAME is a plain file name: A-Z a-z 0-9 . _ - (no slashes, not starting with a dot).\n" +
			"Without --from, or with --from -, the content is read from stdin. The content is never printed.",
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			o.Name = args[0]
			if runF != nil {
				return runF(o)
			}
			return putFileRun(c.Context(), f, o)
		},
	}
	cmd.Flags().StringVar(&o.From, "from", "-", "read the content from FILE (- for stdin)")
	return cmd
}

// readContent reads the file or stdin, at most 1 MiB: one byte more is an
// error, never a truncated secret.
func readContent(o *PutFileOptions) ([]byte, error) {
	r, where := o.Stdin, "stdin"
	if o.From != "-" && o.From != "" {
		fh, err := os.Open(o.From)
		if err != nil {
			return nil, &cmdutil.UsageError{Err: fmt.Errorf("--from: %w", err)}
		}
		defer fh.Close()
		r, where = fh, o.From
	}
	b, err := config.ReadBounded(r, config.Text{Where: "secrets put-file " + o.Name, Noun: "content of " + where, MaxBytes: config.MaxValueBytes})
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, &cmdutil.UsageError{Err: fmt.Errorf("the content from %s is empty", where)}
	}
	return b, nil
}

func putFileRun(ctx context.Context, f *cmdutil.Factory, o *PutFileOptions) error {
	content, err := readContent(o)
	if err != nil {
		return err
	}
	gc, err := o.Client()
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	r, err := gc.PutSecretFile(ctx, &gatewayv1.PutSecretFileRequest{Name: o.Name, Content: content})
	if err != nil {
		return errs.FromStatus(err)
	}
	if f.JSON {
		return f.PrintJSON(r)
	}
	verb := "stored"
	if r.GetReplaced() {
		verb = "replaced"
	}
	fmt.Fprintf(f.Out, "%s %s (%d bytes); refer to it as %s\n", verb, r.GetFile().GetName(), r.GetFile().GetSize(), r.GetFile().GetReference())
	return nil
}
