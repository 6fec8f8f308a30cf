package keycmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/errs"
)

const sealedText = "-----BEGIN AGE ENCRYPTED FILE-----\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IHNjcnlwdA==\n-----END AGE ENCRYPTED FILE-----\n"

// fakeGateway is the gateway's key backup over real gRPC (bufconn); errors
// go through the same class -> status mapping as the real server edge.
type fakeGateway struct {
	gatewayv1.UnimplementedGatewayServer
	gotPass   []byte
	gotSealed []byte
	importErr error
}

func (g *fakeGateway) ExportKey(_ context.Context, r *gatewayv1.ExportKeyRequest) (*gatewayv1.ExportKeyResponse, error) {
	g.gotPass = r.GetPassphrase()
	return &gatewayv1.ExportKeyResponse{Sealed: []byte(sealedText), PrimaryKid: "k2", Keys: []*gatewayv1.KeyStatus{{Kid: "k1"}, {Kid: "k2", Primary: true}}}, nil
}

func (g *fakeGateway) ImportKey(_ context.Context, r *gatewayv1.ImportKeyRequest) (*gatewayv1.ImportKeyResponse, error) {
	g.gotPass, g.gotSealed = r.GetPassphrase(), r.GetSealed()
	if g.importErr != nil {
		return nil, errs.ToStatus(g.importErr)
	}
	return &gatewayv1.ImportKeyResponse{PrimaryKid: "k2", Keys: []*gatewayv1.KeyStatus{{Kid: "k2", Primary: true}}, BackupPath: "/state/keys/secrets.key.replaced-x"}, nil
}

func gatewayFor(t *testing.T, g gatewayv1.GatewayServer) func() (gatewayv1.GatewayClient, error) {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	gatewayv1.RegisterGatewayServer(srv, g)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient("passthrough:///bufnet", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return lis.DialContext(ctx)
	}), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return func() (gatewayv1.GatewayClient, error) { return gatewayv1.NewGatewayClient(cc), nil }
}

// noDial fails the test if the command tries to reach the gateway.
func noDial(t *testing.T) func() (gatewayv1.GatewayClient, error) {
	return func() (gatewayv1.GatewayClient, error) {
		t.Error("dialed the gateway")
		return nil, errors.New("no gateway in this test")
	}
}

func noTTY(t *testing.T) Passphrase {
	return Passphrase{
		IsTTY:      func() bool { return false },
		ReadHidden: func() ([]byte, error) { t.Error("read from a non-terminal"); return nil, errors.New("no") },
		Prompt:     &bytes.Buffer{},
	}
}

// tty answers the prompts in order.
func tty(answers ...string) (Passphrase, *int) {
	n := 0
	return Passphrase{
		IsTTY: func() bool { return true },
		ReadHidden: func() ([]byte, error) {
			if n >= len(answers) {
				return nil, errors.New("no more input")
			}
			n++
			return []byte(answers[n-1]), nil
		},
		Prompt: &bytes.Buffer{},
	}, &n
}

func factory() (*cmdutil.Factory, *bytes.Buffer) {
	out := &bytes.Buffer{}
	return &cmdutil.Factory{Out: out, Err: &bytes.Buffer{}}, out
}

func execute(cmd *cobra.Command, args ...string) error {
	cmd.SetArgs(args)
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cmdutil.UsageError{Err: err} })
	return cmd.Execute()
}

func writeFile(t *testing.T, name, content string) string {
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestFlags(t *testing.T) {
	f, _ := factory()
	var eo *ExportOptions
	require.NoError(t, execute(NewExportCmd(f, Deps{}, func(o *ExportOptions) error { eo = o; return nil }),
		"--out", "k.age", "--passphrase-file", "p", "--force"))
	require.Equal(t, ExportOptions{Out: "k.age", PassphraseFile: "p", Force: true}, *eo)
	var io *ImportOptions
	require.NoError(t, execute(NewImportCmd(f, Deps{}, func(o *ImportOptions) error { io = o; return nil }), "--in", "k.age"))
	require.Equal(t, ImportOptions{In: "k.age"}, *io)

	for _, tc := range []struct {
		name string
		cmd  *cobra.Command
		args []string
		msg  string
	}{
		{"export without --out", NewExportCmd(f, Deps{}, nil), nil, "--out FILE is required"},
		{"import without --in", NewImportCmd(f, Deps{}, nil), nil, "--in FILE is required"},
		{"unknown flag", NewExportCmd(f, Deps{}, nil), []string{"--outt", "x"}, "unknown flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := execute(tc.cmd, tc.args...)
			require.Equal(t, cmdutil.ExitUsage, cmdutil.ExitCode(err), "%v", err)
			require.ErrorContains(t, err, tc.msg)
		})
	}
}

// With no terminal and no --passphrase-file both verbs exit 2 at once,
// without reading stdin and without dialing the gateway.
func TestNoPassphraseExits2Fast(t *testing.T) {
	in := writeFile(t, "k.age", sealedText)
	for _, tc := range []struct {
		name string
		cmd  func(Deps) *cobra.Command
		args []string
	}{
		{"export", func(d Deps) *cobra.Command { f, _ := factory(); return NewExportCmd(f, d, nil) }, []string{"--out", filepath.Join(t.TempDir(), "k.age")}},
		{"import", func(d Deps) *cobra.Command { f, _ := factory(); return NewImportCmd(f, d, nil) }, []string{"--in", in}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := execute(tc.cmd(Deps{Gateway: noDial(t), Passphrase: noTTY(t)}), tc.args...)
			require.Less(t, time.Since(start), time.Second)
			require.Equal(t, cmdutil.ExitUsage, cmdutil.ExitCode(err))
			require.ErrorIs(t, err, ErrNoPassphrase)
			require.ErrorContains(t, err, "--passphrase-file")
		})
	}
}

// The real terminal check: stdin is a pipe that never delivers a byte nor
// closes, which is what a hung script would look like.
func TestNoPassphraseWithPipeStdinNeverWaits(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { r.Close(); w.Close() })
	old := os.Stdin
	os.Stdin = r
	t.Cleanup(func() { os.Stdin = old })
	d := Deps{Gateway: noDial(t), Passphrase: TerminalPassphrase()}
	f, _ := factory()
	done := make(chan error, 1)
	go func() { done <- execute(NewExportCmd(f, d, nil), "--out", filepath.Join(t.TempDir(), "k.age")) }()
	select {
	case err := <-done:
		require.Equal(t, cmdutil.ExitUsage, cmdutil.ExitCode(err))
	case <-time.After(5 * time.Second):
		t.Fatal("export waited on a non-terminal stdin")
	}
}

func TestPassphraseFile(t *testing.T) {
	for _, tc := range []struct {
		name, content, want, msg string
	}{
		{"one line", "correct horse battery staple\n", "correct horse battery staple", ""},
		{"no newline", "correct horse battery staple", "correct horse battery staple", ""},
		{"CRLF", "correct horse battery staple\r\n", "correct horse battery staple", ""},
		{"first line only", "line one passphrase\nsecond line\n", "line one passphrase", ""},
		{"spaces kept", "  spaced passphrase  \n", "  spaced passphrase  ", ""},
		{"empty", "", "", "the first line is empty"},
		{"empty first line", "\nlater\n", "", "the first line is empty"},
		{"too large", strings.Repeat("x", maxPassphraseFile+1), "", "larger than 4096 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "pass", tc.content)
			got, err := noTTY(t).get(p, true)
			if tc.msg != "" {
				require.Equal(t, cmdutil.ExitUsage, cmdutil.ExitCode(err))
				require.ErrorContains(t, err, tc.msg)
				require.ErrorContains(t, err, p, "names the file")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, string(got))
		})
	}
	_, err := noTTY(t).get(filepath.Join(t.TempDir(), "missing"), false)
	require.Equal(t, cmdutil.ExitUsage, cmdutil.ExitCode(err))
	require.ErrorContains(t, err, "--passphrase-file")
}

func TestPrompt(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answers []string
		confirm bool
		want    string
		reads   int
		msg     string
	}{
		{"export: both match", []string{"correct horse battery", "correct horse battery"}, true, "correct horse battery", 2, ""},
		{"export: they differ", []string{"correct horse battery", "correct horse batterx"}, true, "", 2, "the two passphrases differ"},
		{"import: asked once", []string{"correct horse battery"}, false, "correct horse battery", 1, ""},
		{"empty", []string{""}, true, "", 1, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pp, n := tty(tc.answers...)
			got, err := pp.get("", tc.confirm)
			require.Equal(t, tc.reads, *n)
			if tc.msg != "" {
				require.Equal(t, cmdutil.ExitUsage, cmdutil.ExitCode(err))
				require.ErrorContains(t, err, tc.msg)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, string(got))
			require.NotContains(t, pp.Prompt.(*bytes.Buffer).String(), tc.want, "the prompt never echoes")
		})
	}
}

func TestExportWritesOnlyCiphertextAtomically(t *testing.T) {
	g := &fakeGateway{}
	d := Deps{Gateway: gatewayFor(t, g), Passphrase: noTTY(t)}
	pass := writeFile(t, "pass", "correct horse battery staple\n")
	out := filepath.Join(t.TempDir(), "moltbot-key.age")

	f, stdout := factory()
	require.NoError(t, execute(NewExportCmd(f, d, nil), "--out", out, "--passphrase-file", pass))
	require.Equal(t, "correct horse battery staple", string(g.gotPass))
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, sealedText, string(b))
	fi, err := os.Stat(out)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	require.Contains(t, stdout.String(), "2 key(s), primary k2")
	require.NotContains(t, stdout.String(), "YWdl", "never prints the export")
	require.NotContains(t, stdout.String(), "correct horse")
	ents, err := os.ReadDir(filepath.Dir(out))
	require.NoError(t, err)
	require.Len(t, ents, 1, "no temp file left")

	// An existing backup is never overwritten by accident.
	f, _ = factory()
	err = execute(NewExportCmd(f, Deps{Gateway: noDial(t), Passphrase: noTTY(t)}, nil), "--out", out, "--passphrase-file", pass)
	require.Equal(t, cmdutil.ExitUsage, cmdutil.ExitCode(err))
	require.ErrorContains(t, err, "--force")
	f, _ = factory()
	require.NoError(t, execute(NewExportCmd(f, d, nil), "--out", out, "--passphrase-file", pass, "--force"))

	// --json reports where and what, never the ciphertext.
	f, stdout = factory()
	f.JSON = true
	require.NoError(t, execute(NewExportCmd(f, d, nil), "--out", out, "--passphrase-file", pass, "--force"))
	require.JSONEq(t, fmt.Sprintf(`{"out":%q,"primary_kid":"k2","keys":2}`, out), stdout.String())
}

func TestImportSendsTheFileAndShowsRefusals(t *testing.T) {
	in := writeFile(t, "k.age", sealedText)
	pass := writeFile(t, "pass", "correct horse battery staple\n")
	for _, tc := range []struct {
		name string
		err  error
		msg  string
	}{
		{"imported", nil, "primary k2"},
		{"refused", fmt.Errorf("this keyring already protects secrets (first: gateway.auth.token): %w", errs.ErrFailedPrecondition), "already protects secrets"},
		{"wrong passphrase", fmt.Errorf("the passphrase does not open this key export: %w", errs.ErrInvalidArgument), "passphrase does not open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &fakeGateway{importErr: tc.err}
			f, stdout := factory()
			err := execute(NewImportCmd(f, Deps{Gateway: gatewayFor(t, g), Passphrase: noTTY(t)}, nil), "--in", in, "--passphrase-file", pass)
			require.Equal(t, sealedText, string(g.gotSealed))
			require.Equal(t, "correct horse battery staple", string(g.gotPass))
			if tc.err == nil {
				require.NoError(t, err)
				require.Contains(t, stdout.String(), tc.msg)
				return
			}
			require.Equal(t, cmdutil.ExitError, cmdutil.ExitCode(err))
			require.ErrorContains(t, err, tc.msg)
			require.NotContains(t, err.Error(), "rpc error")
		})
	}
	f, _ := factory()
	err := execute(NewImportCmd(f, Deps{Gateway: noDial(t), Passphrase: noTTY(t)}, nil), "--in", filepath.Join(t.TempDir(), "missing.age"), "--passphrase-file", pass)
	require.Equal(t, cmdutil.ExitUsage, cmdutil.ExitCode(err))
	require.ErrorContains(t, err, "--in")
}
