package auditrun

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/audit"
	"github.com/moltbot/moltbot-secure/services/client"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// Endpoint is a service the probes attack.
type Endpoint struct {
	Name       string // gateway, secretsd, ...
	Addr       string // dialable host:port
	ServerName string
}

// Prober runs the --deep live probes: each checks from the outside that
// a control really holds (auth enforced, mTLS required, plaintext refused,
// the sandbox isolated), rather than trusting the config that says so.
type Prober struct {
	Gateway  Endpoint
	Internal []Endpoint
	CAFile   string
	Secrets  secretsv1.SecretsClient
	Sandbox  sandboxv1.SandboxClient
	// SandboxPolicy is the configured sandbox policy for the isolation probe.
	SandboxPolicy func() *sandboxv1.Policy
	// GatewayToken returns the current gateway token: the roles probe calls
	// an owner method with it as a client would.
	GatewayToken func() string
	// UI probes the Control UI's listener (nil: not served).
	UI *UIProbe
	// SelfTLS is a client config with the gateway's own certificate: the
	// no-token probe presents it, so the gateway refuses the call as any
	// other (no token) but does not count it toward a lockout
	// (auth.Authenticator.Self). nil: the CA only.
	SelfTLS *tls.Config
}

// Run runs every probe; each result becomes a `deep.<id>` finding.
func (p *Prober) Run(ctx context.Context) []audit.ProbeResult {
	var out []audit.ProbeResult
	add := func(r audit.ProbeResult) { out = append(out, r) }

	caOnly, caErr := tlsutil.CAOnlyClientConfig(p.CAFile, p.Gateway.ServerName)
	// 1. The gateway refuses a call without a token (loopback is not exempt).
	if caErr == nil {
		creds := caOnly
		if p.SelfTLS != nil {
			creds = p.SelfTLS
		}
		err := probeCall(ctx, p.Gateway.Addr, tlsCreds(creds), gatewayStatus)
		ok := status.Code(err) == codes.Unauthenticated
		add(probe("gateway.auth_enforced", ok, "gateway refuses calls without a token",
			fmt.Sprintf("a call without a token to %s returned %s", p.Gateway.Addr, codeOf(err)),
			"gateway auth must be required: set gateway.auth.token (moltbot security audit --fix) and restart"))
	} else {
		add(probe("gateway.auth_enforced", false, "gateway refuses calls without a token", caErr.Error(), "moltbot certs init"))
	}
	// 1b. The roles hold: a client (gateway token, no certificate) is
	// refused an owner method.
	if caErr == nil && p.GatewayToken != nil {
		add(p.rolesProbe(ctx, caOnly))
	}
	// 1c. The Control UI: Host/Origin, CSP, device approval, insecure auth.
	if p.UI != nil {
		p.UI.run(ctx, add)
	}
	// 2. Plaintext is refused on every port.
	for _, e := range append([]Endpoint{p.Gateway}, p.Internal...) {
		err := probeCall(ctx, e.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()), healthCheck)
		add(probe(e.Name+".plaintext_refused", err != nil, e.Name+" refuses plaintext",
			fmt.Sprintf("a plaintext health check to %s %s", e.Addr, outcome(err)), "serve TLS only (the shared server kit never serves plaintext)"))
	}
	// 3. Internal ports refuse a client without a certificate.
	for _, e := range p.Internal {
		cfg, err := tlsutil.CAOnlyClientConfig(p.CAFile, e.ServerName)
		if err == nil {
			err = probeCall(ctx, e.Addr, tlsCreds(cfg), healthCheck)
		}
		add(probe(e.Name+".mtls_required", err != nil, e.Name+" requires a client certificate",
			fmt.Sprintf("a TLS health check without a client certificate to %s %s", e.Addr, outcome(err)), "internal ports must use tls.RequireAndVerifyClientCert"))
	}
	// 4. secretsd answers and holds a key.
	if p.Secrets != nil {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := p.Secrets.Status(cctx, &secretsv1.StatusRequest{})
		cancel()
		ok := err == nil && st.GetPrimaryKid() != ""
		detail := "secretsd Status: primary key " + st.GetPrimaryKid()
		if err != nil {
			detail = "secretsd Status failed: " + err.Error()
		}
		add(probe("secretsd.status", ok, "secretsd reachable with a primary key", detail, "start secretsd; check keys/secrets.key"))
	}
	// 5. Docker, the image, and a probe container that proves isolation.
	if p.Sandbox != nil {
		p.sandboxProbes(ctx, add)
	}
	return out
}

// ProbeSession is the session key of the --deep isolation probe's sandbox.
const ProbeSession = "agent:audit:probe:deep"

func (p *Prober) sandboxProbes(ctx context.Context, add func(audit.ProbeResult)) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	in, err := p.Sandbox.Info(cctx, &sandboxv1.InfoRequest{})
	cancel()
	if err != nil {
		add(probe("sandbox.docker", false, "sandboxd reaches Docker", "sandboxd Info failed: "+err.Error(), "start sandboxd and the Docker engine"))
		return
	}
	add(probe("sandbox.docker", in.GetDockerReachable(), "sandboxd reaches Docker", "docker: "+orOK(in.GetDockerError()), "start the Docker engine"))
	add(probe("sandbox.image", in.GetImagePresent(), "sandbox image present", "image "+in.GetImage(), "make sandbox-image"))
	if !in.GetDockerReachable() || !in.GetImagePresent() {
		return
	}
	var pol *sandboxv1.Policy
	if p.SandboxPolicy != nil {
		pol = p.SandboxPolicy()
	}
	cctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The probe's container goes when the probe is done (also after a
	// failed exec, which may have created it): each --deep would otherwise
	// leave one running.
	defer func() {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer rcancel()
		_, _ = p.Sandbox.Recreate(rctx, &sandboxv1.RecreateRequest{SessionKey: ProbeSession})
	}()
	res, err := p.Sandbox.Exec(cctx, &sandboxv1.ExecRequest{
		SessionKey: ProbeSession, AgentId: "audit", Policy: pol,
		Shell: `id -u; if touch /.moltbot-probe 2>/dev/null; then echo rootfs=rw; else echo rootfs=ro; fi; ls /sys/class/net 2>/dev/null | tr '\n' ' '; echo`,
	})
	if err != nil {
		add(probe("sandbox.isolation", false, "sandbox isolation holds", "probe container failed: "+err.Error(), "moltbot sandbox explain"))
		return
	}
	lines := strings.Split(strings.TrimSpace(string(res.GetStdout())), "\n")
	uid, fs, nets := "", "", ""
	if len(lines) >= 3 {
		uid, fs, nets = strings.TrimSpace(lines[0]), strings.TrimSpace(lines[1]), strings.TrimSpace(lines[2])
	}
	ok := uid != "" && uid != "0" && fs == "rootfs=ro" && nets == "lo"
	add(probe("sandbox.isolation", ok, "sandbox isolation holds (non-root, read-only root, network none)",
		fmt.Sprintf("probe container: uid=%s %s interfaces=[%s]", uid, fs, nets), "check agents.defaults.sandbox.docker (network none, no root user); moltbot sandbox recreate --all"))
}

// rolesProbe calls SetConfig as a client. The request is invalid by
// construction (an empty path), so even a gateway whose table let it
// through changes nothing: the handler refuses it with InvalidArgument,
// and the probe reports that the call got past authorization.
func (p *Prober) rolesProbe(ctx context.Context, caOnly *tls.Config) audit.ProbeResult {
	const title = "gateway refuses owner methods to a client (gateway token only)"
	err := probeCall(ctx, p.Gateway.Addr, tlsCreds(caOnly), func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := gatewayv1.NewGatewayClient(cc).SetConfig(ctx, &gatewayv1.SetConfigRequest{Path: ""})
		return err
	}, grpc.WithPerRPCCredentials(client.Token(p.GatewayToken())))
	switch status.Code(err) {
	case codes.PermissionDenied:
		return probe("gateway.roles_enforced", true, title, "a client-role SetConfig was refused (PermissionDenied)", "")
	case codes.Unauthenticated, codes.ResourceExhausted, codes.Unavailable, codes.DeadlineExceeded:
		// The probe never got to authorization: inconclusive, not a breach.
		r := probe("gateway.roles_enforced", false, title, "inconclusive: the probe's client call returned "+codeOf(err)+" before authorization", "moltbot status; check the gateway token")
		r.Severity = audit.Info
		return r
	}
	return probe("gateway.roles_enforced", false, title,
		fmt.Sprintf("a client holding only the gateway token reached SetConfig's handler (it returned %s, not PermissionDenied): any app can change the config", codeOf(err)),
		"the gateway must enforce its method x role table (gateway/internal/api/authz.go); do not run a test-only build")
}

func probe(id string, ok bool, title, detail, remedy string) audit.ProbeResult {
	return audit.ProbeResult{ID: id, OK: ok, Title: title, Detail: detail, Remedy: remedy}
}

func orOK(s string) string {
	if s == "" {
		return "ok"
	}
	return s
}

// probeCall dials addr with creds (and a token only where opts add one),
// makes one call with a short deadline and closes the connection.
func probeCall(ctx context.Context, addr string, creds grpc.DialOption, call func(context.Context, *grpc.ClientConn) error, opts ...grpc.DialOption) error {
	cc, err := grpc.NewClient("passthrough:///"+addr, append([]grpc.DialOption{creds}, opts...)...)
	if err != nil {
		return err
	}
	defer cc.Close()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return call(cctx, cc)
}

func gatewayStatus(ctx context.Context, cc *grpc.ClientConn) error {
	_, err := gatewayv1.NewGatewayClient(cc).Status(ctx, &gatewayv1.StatusRequest{})
	return err
}

func healthCheck(ctx context.Context, cc *grpc.ClientConn) error {
	_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func tlsCreds(cfg *tls.Config) grpc.DialOption {
	return grpc.WithTransportCredentials(credentials.NewTLS(cfg))
}

func outcome(err error) string {
	if err == nil {
		return "SUCCEEDED"
	}
	return "was refused (" + codeOf(err) + ")"
}

func codeOf(err error) string {
	if err == nil {
		return "OK"
	}
	return status.Code(err).String()
}
