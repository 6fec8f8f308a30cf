// Package api is secretsd's gRPC surface: thin handlers over package
// keyring. Transport security, authentication and the Authz table are
// enforced by the server kit's interceptors; errors are keyring's classes
// (services/errs), mapped to codes once at the edge.
package api

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/secretsd/internal/keyring"
	"github.com/moltbot/moltbot-secure/secretsd/internal/secretfiles"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// MaxPlaintext bounds one Encrypt: a sealed config backup fits with room to
// spare, and the envelope text (base64, about 4/3) stays under the server's
// 4 MiB message limit.
const MaxPlaintext = 2 << 20

// Config holds the service's dependencies.
type Config struct {
	Keyring *keyring.Keyring
	// Files writes the secret-files volume; nil refuses its RPCs.
	Files  *secretfiles.Store
	Logger hclog.Logger
}

// Service implements secretsv1.SecretsServer.
type Service struct {
	secretsv1.UnsafeSecretsServer

	kr    *keyring.Keyring
	files *secretfiles.Store
	log   hclog.Logger
}

var _ secretsv1.SecretsServer = (*Service)(nil)

// New builds the service.
func New(cfg Config) *Service {
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	files := cfg.Files
	if files == nil {
		files = secretfiles.New("")
	}
	return &Service{kr: cfg.Keyring, files: files, log: log}
}

// RegisterService registers s on r.
func RegisterService(r grpc.ServiceRegistrar, s *Service) { secretsv1.RegisterSecretsServer(r, s) }

// Authz is the authorization table (default deny): only the gateway and the
// admin CLI identity may call anything; pairingd and sandboxd never need a
// secret, so they get PermissionDenied.
func Authz() auth.Table {
	both := []string{auth.IDGateway, auth.IDCLI}
	return auth.Table{
		secretsv1.Secrets_Encrypt_FullMethodName: both,
		secretsv1.Secrets_Decrypt_FullMethodName: both,
		secretsv1.Secrets_Rotate_FullMethodName:  both,
		secretsv1.Secrets_Rewrap_FullMethodName:  both,
		secretsv1.Secrets_Status_FullMethodName:  both,
		secretsv1.Secrets_Retire_FullMethodName:  both,
		// Key backup goes through the gateway only, where the owner check
		// and the security log live.
		secretsv1.Secrets_ExportKey_FullMethodName: {auth.IDGateway},
		secretsv1.Secrets_ImportKey_FullMethodName: {auth.IDGateway},
		// Only the gateway: it proxies the owner's `secrets put-file`, so
		// its owner-only row is the one that decides.
		secretsv1.Secrets_PutSecretFile_FullMethodName:   {auth.IDGateway},
		secretsv1.Secrets_ListSecretFiles_FullMethodName: {auth.IDGateway},
	}
}

// Encrypt seals plaintext under the primary key bound to aad.
func (s *Service) Encrypt(_ context.Context, req *secretsv1.EncryptRequest) (*secretsv1.EncryptResponse, error) {
	if n := len(req.GetPlaintext()); n > MaxPlaintext {
		return nil, fmt.Errorf("plaintext is %d bytes, more than the %d-byte limit: %w", n, MaxPlaintext, errs.ErrInvalidArgument)
	}
	text, kid, err := s.kr.EncryptString(req.GetPlaintext(), req.GetAad())
	if err != nil {
		return nil, err
	}
	return &secretsv1.EncryptResponse{Envelope: text, Kid: kid}, nil
}

// Decrypt opens an envelope sealed for aad.
func (s *Service) Decrypt(_ context.Context, req *secretsv1.DecryptRequest) (*secretsv1.DecryptResponse, error) {
	pt, kid, err := s.kr.DecryptString(req.GetEnvelope(), req.GetAad())
	if err != nil {
		return nil, err
	}
	return &secretsv1.DecryptResponse{Plaintext: pt, Kid: kid}, nil
}

// Rotate adds a new primary key.
func (s *Service) Rotate(ctx context.Context, _ *secretsv1.RotateRequest) (*secretsv1.RotateResponse, error) {
	ki, err := s.kr.Rotate()
	if err != nil {
		return nil, err
	}
	s.log.Info("key rotated", "kid", ki.ID, "fingerprint", ki.Fingerprint, "by", callerID(ctx))
	return &secretsv1.RotateResponse{Primary: keyInfo(ki)}, nil
}

// Rewrap re-seals an envelope under the primary; plaintext stays here.
func (s *Service) Rewrap(_ context.Context, req *secretsv1.RewrapRequest) (*secretsv1.RewrapResponse, error) {
	out, kid, changed, err := s.kr.Rewrap(req.GetEnvelope(), req.GetAad())
	if err != nil {
		return nil, err
	}
	return &secretsv1.RewrapResponse{Envelope: out, Kid: kid, Changed: changed}, nil
}

// Status lists the keys without their material.
func (s *Service) Status(context.Context, *secretsv1.StatusRequest) (*secretsv1.StatusResponse, error) {
	st := s.kr.Status()
	resp := &secretsv1.StatusResponse{PrimaryKid: st.Primary, KeyFile: st.Location}
	for _, k := range st.Keys {
		resp.Keys = append(resp.Keys, keyInfo(k))
	}
	return resp, nil
}

// Retire removes a non-primary key.
func (s *Service) Retire(ctx context.Context, req *secretsv1.RetireRequest) (*secretsv1.RetireResponse, error) {
	if req.GetKid() == "" {
		return nil, fmt.Errorf("kid is empty (see `moltbot status --all` for key ids): %w", errs.ErrInvalidArgument)
	}
	if err := s.kr.Retire(req.GetKid()); err != nil {
		return nil, err
	}
	s.log.Info("key retired", "kid", req.GetKid(), "by", callerID(ctx))
	return &secretsv1.RetireResponse{}, nil
}

func keyInfo(k keyring.KeyInfo) *secretsv1.KeyInfo {
	return &secretsv1.KeyInfo{Kid: k.ID, CreatedAt: timestamppb.New(k.Created), Fingerprint: k.Fingerprint, Primary: k.Primary}
}

func callerID(ctx context.Context) string {
	c, _ := auth.CallerFrom(ctx)
	return c.ID
}

// ExportKey returns the keyring sealed under the caller's passphrase; only
// that ciphertext leaves the service.
func (s *Service) ExportKey(ctx context.Context, req *secretsv1.ExportKeyRequest) (*secretsv1.ExportKeyResponse, error) {
	sealed, st, err := s.kr.Export(req.GetPassphrase())
	if err != nil {
		return nil, err
	}
	s.log.Info("keyring exported", "keys", len(st.Keys), "primary", st.Primary, "by", callerID(ctx))
	resp := &secretsv1.ExportKeyResponse{Sealed: sealed, PrimaryKid: st.Primary}
	for _, k := range st.Keys {
		resp.Keys = append(resp.Keys, keyInfo(k))
	}
	return resp, nil
}

// PutSecretFile writes one file of the secret-files volume.
func (s *Service) PutSecretFile(ctx context.Context, req *secretsv1.PutSecretFileRequest) (*secretsv1.PutSecretFileResponse, error) {
	info, replaced, err := s.files.Put(req.GetName(), req.GetContent())
	if err != nil {
		return nil, err
	}
	s.log.Info("secret file written", "name", info.Name, "size", info.Size, "replaced", replaced, "by", callerID(ctx))
	return &secretsv1.PutSecretFileResponse{File: fileInfo(info), Replaced: replaced}, nil
}

// ListSecretFiles lists the volume's files; never their contents.
func (s *Service) ListSecretFiles(context.Context, *secretsv1.ListSecretFilesRequest) (*secretsv1.ListSecretFilesResponse, error) {
	list, err := s.files.List()
	if err != nil {
		return nil, err
	}
	resp := &secretsv1.ListSecretFilesResponse{Dir: s.files.Dir()}
	for _, i := range list {
		resp.Files = append(resp.Files, fileInfo(i))
	}
	return resp, nil
}

// ImportKey replaces the keyring with an export while nothing depends on it.
func (s *Service) ImportKey(ctx context.Context, req *secretsv1.ImportKeyRequest) (*secretsv1.ImportKeyResponse, error) {
	st, backup, err := s.kr.Import(req.GetSealed(), req.GetPassphrase())
	if err != nil {
		return nil, err
	}
	s.log.Info("keyring imported", "keys", len(st.Keys), "primary", st.Primary, "backup", backup, "by", callerID(ctx))
	resp := &secretsv1.ImportKeyResponse{PrimaryKid: st.Primary, BackupPath: backup}
	for _, k := range st.Keys {
		resp.Keys = append(resp.Keys, keyInfo(k))
	}
	return resp, nil
}

func fileInfo(i secretfiles.Info) *secretsv1.SecretFileInfo {
	return &secretsv1.SecretFileInfo{Name: i.Name, Size: i.Size, ModifiedAt: timestamppb.New(i.Modified), Reference: i.Reference()}
}
