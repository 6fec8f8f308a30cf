// Package offline is what the CLI does on the state dir when the gateway is
// down: the commands an operator needs most exactly then (config validate,
// security migrate, rollback). Secrets still go through secretsd, dialed as
// the admin identity "cli" (pki/cli.pem + pki/cli.token); the CLI never
// reads keys/.
package offline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/client"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// EnvSecretsdAddr overrides the default secretsd address.
const EnvSecretsdAddr = "MOLTBOT_SECRETSD_ADDR"

// DefaultSecretsdAddr is secretsd's address for a single-host install.
func DefaultSecretsdAddr() string {
	if a := os.Getenv(EnvSecretsdAddr); a != "" {
		return a
	}
	return "127.0.0.1:18790"
}

// GatewayDown reports whether err means the gateway could not be reached
// (so the offline path applies), as opposed to a refusal or a bad request.
func GatewayDown(err error) bool {
	return status.Code(err) == codes.Unavailable || errors.Is(err, errs.ErrUnavailable) || errors.Is(err, cmdutil.ErrNoGatewayToken)
}

// Secrets dials secretsd as the admin identity.
func Secrets(f *cmdutil.Factory, addr string) (*Client, error) {
	pki, err := f.PKIDir()
	if err != nil {
		return nil, err
	}
	src, err := tlsutil.NewSource(tlsutil.FilesFor(pki, auth.IDCLI))
	if err != nil {
		return nil, fmt.Errorf("the offline path needs the admin certificate: %w", err)
	}
	tok, err := client.ReadToken(filepath.Join(pki, auth.IDCLI+".token"))
	if err != nil {
		return nil, err
	}
	cc, err := client.Dial(addr, src.ClientConfig(auth.IDSecretsd), tok)
	if err != nil {
		return nil, err
	}
	return &Client{cc: cc, C: secretsv1.NewSecretsClient(cc), addr: addr}, nil
}

// Client is a secretsd client that also satisfies migrate.Encrypter and
// migrate.Decrypter.
type Client struct {
	cc   *grpc.ClientConn
	addr string
	C    secretsv1.SecretsClient
}

// Close closes the connection.
func (c *Client) Close() { _ = c.cc.Close() }

// Encrypt seals through secretsd.
func (c *Client) Encrypt(ctx context.Context, pt []byte, aad string) (string, error) {
	r, err := c.C.Encrypt(ctx, &secretsv1.EncryptRequest{Plaintext: pt, Aad: aad})
	if err != nil {
		return "", c.wrap(err)
	}
	return r.GetEnvelope(), nil
}

// Decrypt opens through secretsd.
func (c *Client) Decrypt(ctx context.Context, env, aad string) ([]byte, error) {
	r, err := c.C.Decrypt(ctx, &secretsv1.DecryptRequest{Envelope: env, Aad: aad})
	if err != nil {
		return nil, c.wrap(err)
	}
	return r.GetPlaintext(), nil
}

func (c *Client) wrap(err error) error {
	if status.Code(err) == codes.Unavailable {
		return fmt.Errorf("secretsd at %s is unreachable too (start it, or give --secretsd): %w", c.addr, errs.FromStatus(err))
	}
	return errs.FromStatus(err)
}
