package configstore

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// SecretsClient adapts the secretsd gRPC client to Secrets; status errors
// come back as errs classes so errors.Is works.
type SecretsClient struct{ C secretsv1.SecretsClient }

// ErrSecretsdDown names the dependency and the fix when secretsd cannot be
// reached: the gateway fails closed, it never falls back to plaintext.
var ErrSecretsdDown = errors.New("secretsd is unreachable: secret fields cannot be read or written until it is back (start secretsd; `moltbot status`)")

// ErrSecretsdRefused: secretsd answered but refused the gateway's own
// credentials (its certificate and pki/gateway.token against
// pki/digests.json). Waiting or restarting secretsd does not help; the
// credentials must match again.
var ErrSecretsdRefused = errors.New("secretsd refused the gateway's credentials: run `moltbot certs init` (compose: the init service) so pki/gateway.pem, gateway.token and pki/digests.json match, then restart the gateway")

// fromStatus maps transport failures to ErrSecretsdDown (Unavailable), a
// refusal of the gateway's own credentials to ErrSecretsdRefused, and
// everything else to its errs class.
func fromStatus(err error) error {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return fmt.Errorf("%w: %w", ErrSecretsdDown, errs.ErrUnavailable)
	case codes.Unauthenticated, codes.PermissionDenied:
		// secretsd's own sentence says which (no token leaves either side).
		return &refusal{msg: fmt.Sprintf("%v (secretsd: %s)", ErrSecretsdRefused, status.Convert(err).Message()), class: errs.FromStatus(err)}
	case codes.ResourceExhausted:
		return &refusal{msg: fmt.Sprintf("%v (secretsd locked the gateway out after failed authentications: %s)", ErrSecretsdRefused, status.Convert(err).Message()), class: errs.FromStatus(err)}
	}
	return errs.FromStatus(err)
}

// refusal is ErrSecretsdRefused and secretsd's error class (errors.Is
// works for both) with one sentence as its text.
type refusal struct {
	msg   string
	class error
}

func (r *refusal) Error() string   { return r.msg }
func (r *refusal) Unwrap() []error { return []error{ErrSecretsdRefused, r.class} }

// Encrypt implements Secrets.
func (c SecretsClient) Encrypt(ctx context.Context, pt []byte, aad string) (string, error) {
	r, err := c.C.Encrypt(ctx, &secretsv1.EncryptRequest{Plaintext: pt, Aad: aad})
	if err != nil {
		return "", fromStatus(err)
	}
	return r.GetEnvelope(), nil
}

// Decrypt implements Secrets.
func (c SecretsClient) Decrypt(ctx context.Context, env, aad string) ([]byte, error) {
	r, err := c.C.Decrypt(ctx, &secretsv1.DecryptRequest{Envelope: env, Aad: aad})
	if err != nil {
		return nil, fromStatus(err)
	}
	return r.GetPlaintext(), nil
}

// Rewrap implements Secrets.
func (c SecretsClient) Rewrap(ctx context.Context, env, aad string) (string, bool, error) {
	r, err := c.C.Rewrap(ctx, &secretsv1.RewrapRequest{Envelope: env, Aad: aad})
	if err != nil {
		return "", false, fromStatus(err)
	}
	return r.GetEnvelope(), r.GetChanged(), nil
}

// Rotate implements Secrets.
func (c SecretsClient) Rotate(ctx context.Context) (string, error) {
	r, err := c.C.Rotate(ctx, &secretsv1.RotateRequest{})
	if err != nil {
		return "", fromStatus(err)
	}
	return r.GetPrimary().GetKid(), nil
}

// Retire implements KeyRetirer.
func (c SecretsClient) Retire(ctx context.Context, kid string) error {
	if _, err := c.C.Retire(ctx, &secretsv1.RetireRequest{Kid: kid}); err != nil {
		return fromStatus(err)
	}
	return nil
}

// Ping implements Secrets.
func (c SecretsClient) Ping(ctx context.Context) error {
	_, err := c.C.Status(ctx, &secretsv1.StatusRequest{})
	if err == nil {
		return nil
	}
	return fromStatus(err)
}

// PairingImporter adapts pairingd's Import RPC to Importer.
type PairingImporter struct{ C pairingv1.PairingClient }

// Import implements Importer.
func (p PairingImporter) Import(ctx context.Context, channel string, pj, aj []byte) (int, int, int, error) {
	r, err := p.C.Import(ctx, &pairingv1.ImportRequest{Channel: channel, PairingJson: pj, AllowFromJson: aj})
	if err != nil {
		return 0, 0, 0, errs.FromStatus(err)
	}
	return int(r.GetPendingImported()), int(r.GetAllowedImported()), int(r.GetSkipped()), nil
}

// PutFile writes a file of the secret-files volume through secretsd (the
// gateway mounts the volume read-only).
func (c SecretsClient) PutFile(ctx context.Context, name string, content []byte) (*secretsv1.PutSecretFileResponse, error) {
	r, err := c.C.PutSecretFile(ctx, &secretsv1.PutSecretFileRequest{Name: name, Content: content})
	if err != nil {
		return nil, fromStatus(err)
	}
	return r, nil
}

// ListFiles lists the secret-files volume through secretsd.
func (c SecretsClient) ListFiles(ctx context.Context) (*secretsv1.ListSecretFilesResponse, error) {
	r, err := c.C.ListSecretFiles(ctx, &secretsv1.ListSecretFilesRequest{})
	if err != nil {
		return nil, fromStatus(err)
	}
	return r, nil
}
