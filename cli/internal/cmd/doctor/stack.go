package doctor

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
)

// stackState is what the running stack says about itself: the gateway's
// Status --all (services, token, certificates, keys, sandbox, channels,
// warnings) and its ValidateConfig of the file it reads. Under compose that
// state is in the services' volumes, not in the host dir the CLI has.
type stackState struct {
	Status   *gatewayv1.StatusResponse
	Validate *gatewayv1.ValidateConfigResponse
	// ValidateErr: the gateway answered Status but not ValidateConfig.
	ValidateErr error
}

// fetchStack asks the gateway. err is why the stack could not be asked.
func fetchStack(f *cmdutil.Factory) (*stackState, error) {
	cc, err := f.Gateway()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gw := gatewayv1.NewGatewayClient(cc)
	st, err := gw.Status(ctx, &gatewayv1.StatusRequest{All: true})
	if err != nil {
		return nil, err
	}
	s := &stackState{Status: st}
	s.Validate, s.ValidateErr = gw.ValidateConfig(ctx, &gatewayv1.ValidateConfigRequest{})
	return s, nil
}

// stackChecks judges the stack's own report. Only checks that did not pass
// carry a fix.
func stackChecks(s *stackState, now time.Time) []Check {
	var out []Check
	add := func(c Check) { out = append(out, c) }
	st := s.Status

	// Services.
	var down []string
	for _, sv := range st.GetServices() {
		if !sv.GetUp() {
			down = append(down, sv.GetName()+" ("+sv.GetError()+")")
		}
	}
	if len(down) > 0 {
		add(Check{Name: "services", Status: "fail", Detail: "down: " + strings.Join(down, ", "), Fix: "moltbot status; docker-compose logs <service>; make up"})
	} else {
		add(Check{Name: "services", Status: "ok", Detail: fmt.Sprintf("%d services up", len(st.GetServices()))})
	}

	// Gateway token (the gateway's own description, never the token).
	if ts := st.GetTokenStrength(); strings.HasPrefix(ts, "ok") {
		add(Check{Name: "gateway token", Status: "ok", Detail: "mode " + st.GetAuthMode() + ", " + ts})
	} else {
		add(Check{Name: "gateway token", Status: "fail", Detail: "mode " + st.GetAuthMode() + ", token " + ts, Fix: "moltbot token generate, then `moltbot config set gateway.auth.token -` and `moltbot gateway restart`"})
	}

	// The config the gateway reads.
	cfg := cmp.Or(st.GetConfigPath(), "the gateway's config")
	switch {
	case s.ValidateErr != nil:
		add(Check{Name: "stack config", Status: "warn", Detail: "not checked: " + s.ValidateErr.Error(), Fix: "moltbot config validate"})
	case !s.Validate.GetValid():
		first := ""
		if ps := s.Validate.GetProblems(); len(ps) > 0 {
			first = ": " + ps[0].GetPath() + ": " + ps[0].GetMessage()
		}
		add(Check{Name: "stack config", Status: "fail", Detail: cfg + " is not valid" + first, Fix: "moltbot config validate; moltbot rollback"})
	default:
		warn := ""
		for _, p := range s.Validate.GetProblems() {
			if p.GetSeverity() != "error" {
				warn = p.GetPath() + ": " + p.GetMessage()
				break
			}
		}
		if warn != "" {
			add(Check{Name: "stack config", Status: "warn", Detail: cfg + ": " + warn, Fix: "moltbot config validate"})
		} else {
			add(Check{Name: "stack config", Status: "ok", Detail: cfg + " is valid"})
		}
	}

	// The encryption key ring (secretsd).
	primary := ""
	for _, k := range st.GetKeys() {
		if k.GetPrimary() {
			primary = k.GetKid()
		}
	}
	if primary == "" {
		add(Check{Name: "secrets key", Status: "fail", Detail: "secretsd reports no primary key: nothing can be encrypted", Fix: "moltbot status --all; docker-compose logs secretsd"})
	} else {
		add(Check{Name: "secrets key", Status: "ok", Detail: fmt.Sprintf("secretsd: %d key(s), primary %s", len(st.GetKeys()), primary)})
	}

	// The stack's certificates.
	for _, c := range st.GetCerts() {
		add(certCheck("stack cert", c.GetName(), c.GetNotAfter().AsTime(), errText(c.GetError()), now))
	}

	// The sandbox (sandboxd's view of Docker and the image).
	if sb := st.GetSandbox(); sb != nil {
		switch {
		case sb.GetMode() == "off":
			add(Check{Name: "sandbox", Status: "warn", Detail: "sandbox mode off: commands run without isolation", Fix: "moltbot config set agents.defaults.sandbox.mode non-main"})
		case !sb.GetDockerReachable():
			add(Check{Name: "sandbox", Status: "fail", Detail: "sandboxd cannot reach Docker: every /exec is refused (" + sb.GetError() + ")", Fix: "start the Docker engine; docker-compose logs sandboxd"})
		case !sb.GetImagePresent():
			add(Check{Name: "sandbox", Status: "fail", Detail: sb.GetImage() + " is missing: every /exec is refused", Fix: "make sandbox-image"})
		default:
			add(Check{Name: "sandbox", Status: "ok", Detail: fmt.Sprintf("mode %s, Docker reachable, %s present", sb.GetMode(), sb.GetImage())})
		}
	}

	// Channels that report an error (a failed poll, a refused token).
	for _, ch := range st.GetChannels() {
		if e := ch.GetError(); e != "" {
			add(Check{Name: "channel " + ch.GetName(), Status: "warn", Detail: e, Fix: "moltbot status --all; moltbot config get channels." + ch.GetName()})
		}
	}
	if p := st.GetPairing(); p != nil {
		for _, ch := range p.GetFullChannels() {
			add(Check{Name: "pairing", Status: "warn", Detail: ch + ": the pending queue is full", Fix: "moltbot pairing list; approve or reject"})
		}
	}
	for _, w := range st.GetWarnings() {
		add(Check{Name: "stack", Status: "warn", Detail: w, Fix: "moltbot status --all"})
	}
	return out
}

func errText(s string) error {
	if s == "" {
		return nil
	}
	return fmt.Errorf("%s", s)
}

// certCheck is one certificate's expiry verdict (host bundle and stack alike).
func certCheck(name, cert string, notAfter time.Time, err error, now time.Time) Check {
	left := notAfter.Sub(now)
	switch {
	case err != nil:
		return Check{Name: name, Status: "fail", Detail: cert + ": " + err.Error(), Fix: "moltbot certs init --force"}
	case left < 0:
		return Check{Name: name, Status: "fail", Detail: cert + " expired " + notAfter.Format(time.DateOnly), Fix: "moltbot certs rotate"}
	case left < 30*24*time.Hour:
		return Check{Name: name, Status: "warn", Detail: cert + " expires " + notAfter.Format(time.DateOnly), Fix: "moltbot certs rotate"}
	}
	return Check{Name: name, Status: "ok", Detail: fmt.Sprintf("%s valid until %s", cert, notAfter.Format(time.DateOnly))}
}
