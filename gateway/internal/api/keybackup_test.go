package api

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

// fakeSecrets is secretsd's key backup; other methods are not used here.
type fakeSecrets struct {
	secretsv1.SecretsClient
	calls     *[]string
	importErr error
	gotPass   []byte
}

func (f *fakeSecrets) ExportKey(_ context.Context, r *secretsv1.ExportKeyRequest, _ ...grpc.CallOption) (*secretsv1.ExportKeyResponse, error) {
	f.gotPass = r.GetPassphrase()
	return &secretsv1.ExportKeyResponse{Sealed: []byte("AGE-CIPHERTEXT"), PrimaryKid: "k2", Keys: []*secretsv1.KeyInfo{{Kid: "k1"}, {Kid: "k2", Primary: true}}}, nil
}

func (f *fakeSecrets) ImportKey(_ context.Context, r *secretsv1.ImportKeyRequest, _ ...grpc.CallOption) (*secretsv1.ImportKeyResponse, error) {
	*f.calls = append(*f.calls, "import")
	if f.importErr != nil {
		return nil, errs.ToStatus(f.importErr) // as it arrives over the wire
	}
	return &secretsv1.ImportKeyResponse{PrimaryKid: "k2", Keys: []*secretsv1.KeyInfo{{Kid: "k2", Primary: true}}, BackupPath: "/state/keys/secrets.key.replaced-x"}, nil
}

type fakeResealer struct {
	name      string
	calls     *[]string
	unsealErr error
	resealErr error
}

func (r fakeResealer) Unseal(context.Context) error {
	*r.calls = append(*r.calls, "unseal "+r.name)
	return r.unsealErr
}

func (r fakeResealer) Reseal(context.Context) error {
	*r.calls = append(*r.calls, "reseal "+r.name)
	return r.resealErr
}

type event struct{ kind, target string }

// recorderFunc is a seclog.Recorder from a function.
type recorderFunc func(seclog.Event) error

func (f recorderFunc) Record(ev seclog.Event) error { return f(ev) }

func keyService(sec secretsv1.SecretsClient, rs []Resealer, events *[]event) *Service {
	return New(Config{
		Secrets:   SecretsDeps{Log: recorderFunc(func(ev seclog.Event) error { *events = append(*events, event{ev.Kind, ev.Target}); return nil })},
		KeyBackup: KeyBackupDeps{Secrets: sec, Resealers: rs},
	})
}

func TestExportKey(t *testing.T) {
	var calls []string
	var events []event
	sec := &fakeSecrets{calls: &calls}
	resp, err := keyService(sec, nil, &events).ExportKey(context.Background(), &gatewayv1.ExportKeyRequest{Passphrase: []byte("correct horse battery")})
	require.NoError(t, err)
	require.Equal(t, "correct horse battery", string(sec.gotPass))
	require.Equal(t, "AGE-CIPHERTEXT", string(resp.GetSealed()))
	require.Equal(t, "k2", resp.GetPrimaryKid())
	require.Len(t, resp.GetKeys(), 2)
	require.Equal(t, []event{{"key.export", "keyring (primary k2, 2 keys)"}}, events)

	_, err = New(Config{}).ExportKey(context.Background(), &gatewayv1.ExportKeyRequest{})
	require.ErrorIs(t, err, errs.ErrFailedPrecondition)
}

func TestImportKeyKeepsInternalDataSealed(t *testing.T) {
	refused := fmt.Errorf("this keyring already protects secrets: %w", errs.ErrFailedPrecondition)
	tests := []struct {
		name      string
		importErr error
		unsealErr error
		resealErr error
		wantCalls []string
		wantErr   error
		msg       string
		logged    bool
	}{
		{name: "imported", wantCalls: []string{"unseal a", "unseal b", "import", "reseal a", "reseal b"}, logged: true},
		{name: "secretsd refuses", importErr: refused, wantCalls: []string{"unseal a", "unseal b", "import"}, wantErr: errs.ErrFailedPrecondition, msg: "already protects secrets"},
		{name: "unseal fails: secretsd untouched", unsealErr: errors.New("hmac key does not open"), wantCalls: []string{"unseal a"}, wantErr: errs.ErrFailedPrecondition, msg: "nothing changed"},
		{name: "reseal fails after import", resealErr: errors.New("disk full"), wantCalls: []string{"unseal a", "unseal b", "import", "reseal a"}, wantErr: errs.ErrFailedPrecondition, msg: "the key was imported", logged: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls []string
			var events []event
			rs := []Resealer{
				fakeResealer{name: "a", calls: &calls, unsealErr: tc.unsealErr, resealErr: tc.resealErr},
				fakeResealer{name: "b", calls: &calls},
			}
			s := keyService(&fakeSecrets{calls: &calls, importErr: tc.importErr}, rs, &events)
			resp, err := s.ImportKey(context.Background(), &gatewayv1.ImportKeyRequest{Sealed: []byte("x"), Passphrase: []byte("p")})
			require.Equal(t, tc.wantCalls, calls)
			if tc.logged {
				require.Equal(t, []event{{"key.import", "keyring (primary k2, 1 keys)"}}, events)
			} else {
				require.Empty(t, events)
			}
			if tc.msg == "" {
				require.NoError(t, err)
				require.EqualValues(t, 2, resp.GetResealed())
				require.Equal(t, "k2", resp.GetPrimaryKid())
				return
			}
			require.ErrorContains(t, err, tc.msg)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
			}
			require.NotContains(t, err.Error(), "rpc error")
			// What the owner sees after the server edge: the message, not "internal error".
			require.Contains(t, errs.ToStatus(err).Error(), tc.msg)
		})
	}
}

// With no Resealer configured an import is just the forwarded call.
func TestImportKeyWithoutResealers(t *testing.T) {
	var calls []string
	var events []event
	resp, err := keyService(&fakeSecrets{calls: &calls}, nil, &events).ImportKey(context.Background(), &gatewayv1.ImportKeyRequest{Sealed: []byte("x"), Passphrase: []byte("p")})
	require.NoError(t, err)
	require.Equal(t, []string{"import"}, calls)
	require.Zero(t, resp.GetResealed())
}

// The owner-only rows: only the cli identity (owner) may back up or restore.
func TestKeyBackupIsOwnerOnly(t *testing.T) {
	for _, m := range []string{gatewayv1.Gateway_ExportKey_FullMethodName, gatewayv1.Gateway_ImportKey_FullMethodName} {
		require.Equal(t, Authz()[m], Authz()[gatewayv1.Gateway_RotateKey_FullMethodName], m)
		require.Len(t, Authz()[m], 1, m)
	}
}
