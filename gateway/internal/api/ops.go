package api

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/seclog"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// OpsDeps: status --all, the security log, cert rotation, reload, audit.
type OpsDeps struct {
	PKIDir  string
	SecLog  *seclog.Log
	Secrets secretsv1.SecretsClient
	Sandbox sandboxv1.SandboxClient
	// RotateCerts reissues leaf certs (and the CA with ca=true) where the
	// gateway holds the CA key; nil when it does not (compose).
	RotateCerts func(ca bool) error
	// Reload re-reads, validates and applies the config.
	Reload func(ctx context.Context) (*gatewayv1.ReloadResponse, error)
	// Audit runs the security audit.
	Audit func(ctx context.Context, req *gatewayv1.AuditRequest) (*gatewayv1.AuditResponse, error)
	// ConfigWarnings returns the current config's validation warnings.
	ConfigWarnings func() []string
	// PairingStatus and ChannelsStatus come from the messaging capability.
	PairingStatus  func(ctx context.Context) *gatewayv1.PairingStatus
	ChannelsStatus func() []*gatewayv1.ChannelStatus
	// SandboxMode is the configured sandbox mode.
	SandboxMode func() string
}

// sandboxUsable marks sandboxd down when it cannot run a sandbox (Docker
// unreachable or the image missing) while the config needs one: non-main
// sessions are refused then, so `moltbot status` must not say all is well.
func (s *Service) sandboxUsable(ctx context.Context, st *gatewayv1.ServiceStatus, resp *gatewayv1.StatusResponse) {
	o := s.cfg.Ops
	if o.Sandbox == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	in, err := o.Sandbox.Info(ctx, &sandboxv1.InfoRequest{})
	problem := ""
	switch {
	case err != nil:
		problem = "sandbox info: " + errs.Text(err)
	case !in.GetDockerReachable():
		problem = "Docker engine unreachable (" + in.GetDockerError() + "): start Docker; every /exec is refused until then (the gateway runs none itself)"
	case !in.GetImagePresent():
		problem = "sandbox image " + in.GetImage() + " is missing: run `make sandbox-image`; every /exec is refused until then (the gateway runs none itself)"
	}
	if problem == "" {
		return
	}
	if o.SandboxMode != nil && o.SandboxMode() == "off" {
		resp.Warnings = append(resp.Warnings, "sandboxd: "+problem+" (sandbox mode is off)")
		return
	}
	st.Up, st.Error = false, problem
}

// statusAll adds the --all sections.
func (s *Service) statusAll(ctx context.Context, resp *gatewayv1.StatusResponse) {
	o := s.cfg.Ops
	resp.Certs = certStatus(o.PKIDir)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if o.Secrets != nil {
		if st, err := o.Secrets.Status(ctx, &secretsv1.StatusRequest{}); err == nil {
			for _, k := range st.GetKeys() {
				resp.Keys = append(resp.Keys, &gatewayv1.KeyStatus{Kid: k.GetKid(), Primary: k.GetPrimary(), CreatedAt: k.GetCreatedAt(), Fingerprint: k.GetFingerprint()})
			}
		} else {
			resp.Warnings = append(resp.Warnings, "secretsd key status: "+errs.Text(err))
		}
	}
	if o.Sandbox != nil {
		sb := &gatewayv1.SandboxStatus{}
		if in, err := o.Sandbox.Info(ctx, &sandboxv1.InfoRequest{}); err == nil {
			sb.DockerReachable, sb.ImagePresent, sb.Image, sb.Containers = in.GetDockerReachable(), in.GetImagePresent(), in.GetImage(), in.GetContainers()
			sb.Error = in.GetDockerError()
			if !sb.ImagePresent && sb.Error == "" {
				sb.Error = "sandbox image " + in.GetImage() + " is missing: run `make sandbox-image`"
			}
		} else {
			sb.Error = errs.Text(err)
		}
		if o.SandboxMode != nil {
			sb.Mode = o.SandboxMode()
		}
		resp.Sandbox = sb
	}
	if o.PairingStatus != nil {
		resp.Pairing = o.PairingStatus(ctx)
	}
	if o.ChannelsStatus != nil {
		resp.Channels = o.ChannelsStatus()
	}
	if o.ConfigWarnings != nil {
		resp.Warnings = append(resp.Warnings, o.ConfigWarnings()...)
	}
}

// certStatus reads the public certs in the pki dir (never keys).
func certStatus(dir string) []*gatewayv1.CertStatus {
	if dir == "" {
		return nil
	}
	var out []*gatewayv1.CertStatus
	for _, e := range tlsutil.Expiries(dir) {
		cs := &gatewayv1.CertStatus{Name: e.Name}
		if e.Err != nil {
			cs.Error = e.Err.Error()
		} else {
			cs.NotAfter = timestamppb.New(e.NotAfter)
		}
		out = append(out, cs)
	}
	return out
}

// SecurityLog streams the security event log; with verify each line is
// checked against the hash chain, with follow new lines keep coming.
func (s *Service) SecurityLog(req *gatewayv1.SecurityLogRequest, stream gatewayv1.Gateway_SecurityLogServer) error {
	l := s.cfg.Ops.SecLog
	if l == nil {
		return fmt.Errorf("security log is not open: %w", errs.ErrUnavailable)
	}
	var sub <-chan string
	if req.GetFollow() {
		ch, cancel := l.Subscribe()
		defer cancel()
		sub = ch
	}
	if err := l.Flush(stream.Context()); err != nil {
		return err
	}
	var sendErr error
	send := func(_ int, raw string) {
		if sendErr == nil {
			sendErr = stream.Send(&gatewayv1.SecurityLogResponse{Line: raw, Verified: req.GetVerify()})
		}
	}
	if req.GetVerify() {
		// The gateway holds the key: the chain and the head are checked here.
		if _, verr := l.VerifyHistory(send); sendErr == nil && verr != nil {
			return stream.Send(&gatewayv1.SecurityLogResponse{VerifyError: verr.Error()})
		}
	} else if err := l.Lines(send); err != nil && sendErr == nil {
		return err
	}
	if sendErr != nil {
		return sendErr
	}
	if sub == nil {
		return nil
	}
	for {
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case line := <-sub:
			if err := stream.Send(&gatewayv1.SecurityLogResponse{Line: line}); err != nil {
				return err
			}
		}
	}
}

// RotateCerts reissues certs where the gateway holds the CA key.
func (s *Service) RotateCerts(ctx context.Context, req *gatewayv1.RotateCertsRequest) (*gatewayv1.RotateCertsResponse, error) {
	if s.cfg.Ops.RotateCerts == nil {
		return nil, fmt.Errorf("the gateway does not hold the CA key here: run `moltbot certs rotate` where it lives (compose: docker-compose run --rm init certs rotate --state-dir=/init): %w", errs.ErrFailedPrecondition)
	}
	if err := s.cfg.Ops.RotateCerts(req.GetCa()); err != nil {
		return nil, err
	}
	if s.cfg.Ops.SecLog != nil {
		if err := s.cfg.Ops.SecLog.Record(seclog.Decision(ctx, "cert.rotate", s.cfg.Ops.PKIDir, map[string]string{"ca": fmt.Sprint(req.GetCa())})); err != nil {
			s.cfg.Logger.Error("security log: event not recorded", "kind", "cert.rotate", "error", err.Error())
		}
	}
	return &gatewayv1.RotateCertsResponse{Certs: certStatus(s.cfg.Ops.PKIDir)}, nil
}

// Reload re-reads and applies the config.
func (s *Service) Reload(ctx context.Context, req *gatewayv1.ReloadRequest) (*gatewayv1.ReloadResponse, error) {
	if s.cfg.Ops.Reload == nil {
		return nil, fmt.Errorf("reload is not wired: %w", errs.ErrUnimplemented)
	}
	return s.cfg.Ops.Reload(ctx)
}

// Audit runs the security audit.
func (s *Service) Audit(ctx context.Context, req *gatewayv1.AuditRequest) (*gatewayv1.AuditResponse, error) {
	if req.GetFix() || req.GetDryRun() {
		// Fixing is its own owner-only method: a flag on a client-callable
		// method must not be a way around the role table.
		return nil, fmt.Errorf("fix: Audit only reports; call AuditFix (`moltbot security audit --fix`, owner only): %w", errs.ErrInvalidArgument)
	}
	return s.audit(ctx, &gatewayv1.AuditRequest{Deep: req.GetDeep()})
}

// AuditFix applies the safe fixes (owner only, by the role table).
func (s *Service) AuditFix(ctx context.Context, req *gatewayv1.AuditFixRequest) (*gatewayv1.AuditFixResponse, error) {
	r, err := s.audit(ctx, &gatewayv1.AuditRequest{Deep: req.GetDeep(), Fix: true, DryRun: req.GetDryRun()})
	if err != nil {
		return nil, err
	}
	return &gatewayv1.AuditFixResponse{Report: r}, nil
}

func (s *Service) audit(ctx context.Context, req *gatewayv1.AuditRequest) (*gatewayv1.AuditResponse, error) {
	if s.cfg.Ops.Audit == nil {
		return nil, fmt.Errorf("audit is not wired: %w", errs.ErrUnimplemented)
	}
	return s.cfg.Ops.Audit(ctx, req)
}

// probeHeader dials a dependency's health with header capture (version, start).
func probeOpts(md *metadata.MD) []grpc.CallOption { return []grpc.CallOption{grpc.Header(md)} }
