package api

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/moltbot/moltbot-secure/gateway/internal/configstore"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Rollback restores a sealed backup; one with plain-text secrets needs yes.
func (s *Service) Rollback(ctx context.Context, req *gatewayv1.RollbackRequest) (*gatewayv1.RollbackResponse, error) {
	st, err := s.configStore()
	if err != nil {
		return nil, err
	}
	res, err := st.Rollback(ctx, req.GetBackup(), req.GetYes())
	if err != nil {
		return nil, err
	}
	return &gatewayv1.RollbackResponse{RestoredFrom: res.From, PlaintextPaths: res.Plaintext}, nil
}

// ListBackups lists the sealed backups from their headers; never contents.
func (s *Service) ListBackups(_ context.Context, _ *gatewayv1.ListBackupsRequest) (*gatewayv1.ListBackupsResponse, error) {
	st, err := s.configStore()
	if err != nil {
		return nil, err
	}
	list, err := st.ListBackups()
	if err != nil {
		return nil, err
	}
	out := &gatewayv1.ListBackupsResponse{}
	for _, b := range list {
		out.Backups = append(out.Backups, &gatewayv1.BackupInfo{Name: b.Name, File: b.File, Created: timestamppb.New(b.Created), Writer: b.Writer, Size: b.Size})
	}
	return out, nil
}

// MigrateFrom receives an upstream state dir file by file (each file in
// one or more chunks, in order) within configstore's limits, then imports
// and migrates it.
func (s *Service) MigrateFrom(stream gatewayv1.Gateway_MigrateFromServer) error {
	st, err := s.configStore()
	if err != nil {
		return err
	}
	var (
		source string
		dryRun bool
		files  []configstore.ImportFile
		total  int
	)
	for n := 0; ; n++ {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if n == 0 {
			source, dryRun = req.GetSource(), req.GetDryRun()
		}
		if req.GetPath() == "" {
			if len(req.GetChunk()) > 0 {
				return fmt.Errorf("a chunk without a path: %w", errs.ErrInvalidArgument)
			}
			continue
		}
		total += len(req.GetChunk())
		if total > configstore.MaxImportBytes {
			return fmt.Errorf("more than %d bytes sent: over the import limit: %w", configstore.MaxImportBytes, errs.ErrInvalidArgument)
		}
		if k := len(files); k > 0 && files[k-1].Path == req.GetPath() {
			if len(files[k-1].Data)+len(req.GetChunk()) > config.MaxFileBytes {
				return fmt.Errorf("%s: over the %d-byte limit of a state file: %w", req.GetPath(), config.MaxFileBytes, errs.ErrInvalidArgument)
			}
			files[k-1].Data = append(files[k-1].Data, req.GetChunk()...)
			continue
		}
		if len(files) >= configstore.MaxImportFiles {
			return fmt.Errorf("more than %d files: over the import limit: %w", configstore.MaxImportFiles, errs.ErrInvalidArgument)
		}
		files = append(files, configstore.ImportFile{Path: req.GetPath(), Data: append([]byte(nil), req.GetChunk()...)})
	}
	if source == "" {
		source = "the operator's upstream state dir"
	}
	res, err := st.MigrateFrom(stream.Context(), source, files, dryRun)
	if err != nil {
		return err
	}
	return stream.SendAndClose(&gatewayv1.MigrateFromResponse{Actions: res.Actions, Unfixed: problems(res.Unfixed),
		BackupPath: res.BackupPath, Changed: res.Changed, Imported: res.Imported})
}
