package audit

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
)

// Chmod tightens rel (inside stateDir) to mode without following symlinks.
func Chmod(stateDir, rel string, mode fs.FileMode) error {
	p := filepath.Join(stateDir, rel)
	if rel != "." && (strings.HasPrefix(rel, "..") || filepath.IsAbs(rel)) {
		return fmt.Errorf("%s is outside the state dir", rel)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%s is a symlink: not following it", p)
	}
	return os.Chmod(p, mode)
}

// ToProto converts findings for the wire.
func ToProto(fs []Finding) []*gatewayv1.Finding {
	out := make([]*gatewayv1.Finding, 0, len(fs))
	for _, f := range fs {
		out = append(out, &gatewayv1.Finding{Id: f.ID, Severity: string(f.Severity), Title: f.Title, Detail: f.Detail, Remedy: f.Remedy, Fixable: f.Fixable, Acknowledged: f.Acknowledged, AckReason: f.AckReason})
	}
	return out
}

// FromProto converts findings back (the CLI renders them with services/audit).
func FromProto(fs []*gatewayv1.Finding) []Finding {
	out := make([]Finding, 0, len(fs))
	for _, f := range fs {
		out = append(out, Finding{ID: f.GetId(), Severity: Severity(f.GetSeverity()), Title: f.GetTitle(), Detail: f.GetDetail(), Remedy: f.GetRemedy(), Fixable: f.GetFixable(), Acknowledged: f.GetAcknowledged(), AckReason: f.GetAckReason()})
	}
	return out
}
