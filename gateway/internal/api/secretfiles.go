package api

import (
	"context"
	"fmt"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// SecretFiles is secretsd's secret-files volume, as the gateway reaches it
// (configstore.SecretsClient).
type SecretFiles interface {
	PutFile(ctx context.Context, name string, content []byte) (*secretsv1.PutSecretFileResponse, error)
	ListFiles(ctx context.Context) (*secretsv1.ListSecretFilesResponse, error)
}

func (s *Service) secretFiles() (SecretFiles, error) {
	if s.cfg.Secrets.Files == nil {
		return nil, fmt.Errorf("secret files are not wired in this gateway: %w", errs.ErrFailedPrecondition)
	}
	return s.cfg.Secrets.Files, nil
}

// PutSecretFile stores a file for ${file:NAME} references; secretsd checks
// the name and size and writes it. Never logs or returns the content.
func (s *Service) PutSecretFile(ctx context.Context, req *gatewayv1.PutSecretFileRequest) (*gatewayv1.PutSecretFileResponse, error) {
	f, err := s.secretFiles()
	if err != nil {
		return nil, err
	}
	r, err := f.PutFile(ctx, req.GetName(), req.GetContent())
	if err != nil {
		return nil, err
	}
	s.secretsEvent(ctx, "secrets.put_file", r.GetFile().GetName())
	return &gatewayv1.PutSecretFileResponse{File: fileInfo(r.GetFile()), Replaced: r.GetReplaced()}, nil
}

// ListSecretFiles lists names and sizes; never contents.
func (s *Service) ListSecretFiles(ctx context.Context, _ *gatewayv1.ListSecretFilesRequest) (*gatewayv1.ListSecretFilesResponse, error) {
	f, err := s.secretFiles()
	if err != nil {
		return nil, err
	}
	r, err := f.ListFiles(ctx)
	if err != nil {
		return nil, err
	}
	out := &gatewayv1.ListSecretFilesResponse{}
	for _, i := range r.GetFiles() {
		out.Files = append(out.Files, fileInfo(i))
	}
	return out, nil
}

func fileInfo(i *secretsv1.SecretFileInfo) *gatewayv1.SecretFileInfo {
	return &gatewayv1.SecretFileInfo{Name: i.GetName(), Size: i.GetSize(), ModifiedAt: i.GetModifiedAt(), Reference: i.GetReference()}
}
