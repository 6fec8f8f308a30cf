// Package auditrun runs the security audit for the gateway's Audit RPC:
// it gathers the inputs (config file, state-dir snapshot, key status,
// certificates, and with --deep live probes) for the pure engine in
// services/audit, and executes the safe fixes it plans.
package auditrun

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/audit"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/migrate"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// ConfigWriter is how fixes change the config: the gateway's config store
// (validate, encrypt secret paths, atomic write with backup).
type ConfigWriter interface {
	Set(ctx context.Context, path, value string, valueIsString, unset bool) error
}

// Config holds the runner's dependencies.
type Config struct {
	StateDir   string
	ConfigPath string
	PKIDir     string
	Secrets    secretsv1.SecretsClient
	Writer     ConfigWriter
	// Token returns the running gateway token and its source (never logged).
	Token func() (token, source string)
	// Prober runs the --deep live probes; nil disables --deep.
	Prober *Prober
	// Decrypted runs the config model's checks on the file's encrypted
	// values (configstore.Store.CheckDecrypted, the same checks `config
	// validate` runs); nil skips them.
	Decrypted func(ctx context.Context) ([]config.Problem, error)
	Now       func() time.Time
}

// Runner runs audits.
type Runner struct{ cfg Config }

// New returns a runner.
func New(cfg Config) *Runner {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Runner{cfg: cfg}
}

// Input gathers the engine's input. It never fails: what cannot be read
// becomes a finding through the engine.
func (r *Runner) Input(ctx context.Context, deep bool) audit.Input {
	in := audit.Input{
		ConfigPath:   r.cfg.ConfigPath,
		ProcessUID:   os.Getuid(),
		Now:          r.cfg.Now(),
		IsSecretPath: config.IsSecretPath,
		CheckToken:   auth.CheckToken,
	}
	in.Config, in.ConfigErr = loadTree(r.cfg.ConfigPath)
	snap, err := audit.SnapshotDir(r.cfg.StateDir)
	if err == nil {
		in.Snapshot = snap
	}
	if r.cfg.Token != nil {
		in.Token, in.TokenSource = r.cfg.Token()
	}
	if r.cfg.Secrets != nil {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := r.cfg.Secrets.Status(cctx, &secretsv1.StatusRequest{})
		cancel()
		if err == nil {
			ki := &audit.KeyInfo{Primary: st.GetPrimaryKid()}
			for _, k := range st.GetKeys() {
				ki.IDs = append(ki.IDs, k.GetKid())
				if k.GetPrimary() {
					ki.CreatedAt = k.GetCreatedAt().AsTime()
				}
			}
			in.KeyStatus = ki
		}
	}
	if r.cfg.Decrypted != nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ps, err := r.cfg.Decrypted(cctx)
		cancel()
		if err != nil {
			// Not silently passed: the engine reports what it could not check.
			ps = []config.Problem{{Path: "gateway.auth.token", Severity: config.SevWarning,
				Message: "the encrypted values could not be checked: " + err.Error(), Fix: "moltbot status --all"}}
		}
		in.Decrypted = ps
	}
	in.Certs = Certs(r.cfg.PKIDir)
	if deep && r.cfg.Prober != nil {
		in.Probes = r.cfg.Prober.Run(ctx)
	}
	return in
}

// Certs lists the certificate expiries in pkiDir for the engine.
func Certs(pkiDir string) []audit.CertInfo {
	var out []audit.CertInfo
	for _, e := range tlsutil.Expiries(pkiDir) {
		out = append(out, audit.CertInfo{Name: e.Name, NotAfter: e.NotAfter, Err: e.Err})
	}
	return out
}

// loadTree parses the config file into its raw tree.
func loadTree(path string) (map[string]any, error) {
	c, err := config.Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]any{}, nil
	}
	if err != nil {
		return nil, err
	}
	return c.Raw, nil
}

// Audit runs the audit, and with Fix applies the safe remediations (or,
// with DryRun, lists them) and audits again.
func (r *Runner) Audit(ctx context.Context, req *gatewayv1.AuditRequest) (*gatewayv1.AuditResponse, error) {
	in := r.Input(ctx, req.GetDeep())
	rep := audit.Run(in)
	resp := &gatewayv1.AuditResponse{Score: int32(rep.Score), Band: rep.Band, ScoreBeforeFix: int32(rep.Score)}
	if req.GetFix() {
		plan := audit.Plan(rep, in)
		for _, a := range plan {
			if req.GetDryRun() {
				resp.Fixes = append(resp.Fixes, "would: "+a.Description)
				continue
			}
			msg, err := r.apply(ctx, a)
			if err != nil {
				resp.Fixes = append(resp.Fixes, fmt.Sprintf("failed: %s: %v", a.Description, err))
				continue
			}
			resp.Fixes = append(resp.Fixes, msg)
		}
		if !req.GetDryRun() && len(plan) > 0 {
			rep = audit.Run(r.Input(ctx, req.GetDeep()))
			resp.Score, resp.Band = int32(rep.Score), rep.Band
		}
	}
	resp.Findings = audit.ToProto(rep.Findings)
	return resp, nil
}

// apply executes one action. Config edits go through the config store, so
// each is validated, backed up and written atomically; a generated token
// is encrypted by secretsd before it touches the disk.
func (r *Runner) apply(ctx context.Context, a audit.FixAction) (string, error) {
	ctx = migrate.WithWriter(ctx, migrate.WriterAuditFix) // `rollback --list` names what wrote each backup
	switch a.Kind {
	case audit.KindGenerateToken:
		tok, err := auth.GenerateToken(rand.Reader)
		if err != nil {
			return "", err
		}
		if err := r.cfg.Writer.Set(ctx, a.Path, tok, true, false); err != nil {
			return "", err
		}
		return fmt.Sprintf("generated a new gateway token at %s (encrypted); run `moltbot gateway restart`, then give clients the new token (`moltbot config get %s --reveal`)", a.Path, a.Path), nil
	case audit.KindSetConfig:
		v, isString, err := a.SetArgs()
		if err != nil {
			return "", err
		}
		if err := r.cfg.Writer.Set(ctx, a.Path, v, isString, false); err != nil {
			return "", err
		}
		return a.Description, nil
	case audit.KindRemoveConfig:
		if err := r.cfg.Writer.Set(ctx, a.Path, "", false, true); err != nil {
			return "", err
		}
		return a.Description, nil
	case audit.KindChmod:
		if err := audit.Chmod(r.cfg.StateDir, a.Path, a.Mode); err != nil {
			return "", err
		}
		return a.Description, nil
	}
	return "", fmt.Errorf("unknown fix kind %q", a.Kind)
}
