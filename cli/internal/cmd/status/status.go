// Package status is `moltbot status`.
package status

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
)

// Options are the flags of `status`.
type Options struct {
	All bool
}

// NewCmd returns `moltbot status`.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the health of the gateway and every service (exit 3 when something is down)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(o)
			}
			return run(c.Context(), f, o)
		},
	}
	cmd.Flags().BoolVar(&o.All, "all", false, "also show auth, certificates, keys, sandbox, pairing and channels")
	return cmd
}

func run(ctx context.Context, f *cmdutil.Factory, o *Options) error {
	cc, err := f.Gateway()
	if err != nil {
		return gatewayFailed(f, f.Explain(err))
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := gatewayv1.NewGatewayClient(cc).Status(ctx, &gatewayv1.StatusRequest{All: o.All})
	if err != nil {
		return gatewayFailed(f, f.Explain(err))
	}
	down := 0
	for _, s := range resp.GetServices() {
		if !s.GetUp() {
			down++
		}
	}
	// With --all a sandbox that cannot run (Docker unreachable) counts as
	// down when the config needs it: non-main sessions would be refused.
	if sb := resp.GetSandbox(); o.All && sb != nil && sb.GetMode() != "off" && !sb.GetDockerReachable() {
		down++
	}
	if f.JSON {
		if err := f.PrintJSON(resp); err != nil {
			return err
		}
	} else {
		print(f, resp, o.All)
	}
	if down > 0 {
		return &cmdutil.DegradedError{Msg: fmt.Sprintf("%d service(s) down", down)}
	}
	return nil
}

func print(f *cmdutil.Factory, r *gatewayv1.StatusResponse, all bool) {
	fmt.Fprintln(f.Out, "SERVICES")
	for _, s := range r.GetServices() {
		state, detail := "up", s.GetVersion()
		if s.GetStartedAt() != nil {
			detail += fmt.Sprintf(", up %s", time.Since(s.GetStartedAt().AsTime()).Round(time.Second))
		}
		if !s.GetUp() {
			state, detail = "DOWN", s.GetError()
		}
		fmt.Fprintf(f.Out, "  %-10s %-5s %s\n", s.GetName(), state, detail)
	}
	fmt.Fprintf(f.Out, "AUTH\n  mode %s, token %s\n", r.GetAuthMode(), r.GetTokenStrength())
	if all {
		fmt.Fprintln(f.Out, "CERTIFICATES")
		for _, c := range r.GetCerts() {
			if c.GetError() != "" {
				fmt.Fprintf(f.Out, "  %-10s ERROR %s\n", c.GetName(), c.GetError())
				continue
			}
			left := time.Until(c.GetNotAfter().AsTime())
			fmt.Fprintf(f.Out, "  %-10s expires %s (%d days)\n", c.GetName(), c.GetNotAfter().AsTime().Format(time.DateOnly), int(left.Hours()/24))
		}
		fmt.Fprintln(f.Out, "KEYS")
		for _, k := range r.GetKeys() {
			p := ""
			if k.GetPrimary() {
				p = " (primary)"
			}
			fmt.Fprintf(f.Out, "  %-4s%s fingerprint %s, age %d days\n", k.GetKid(), p, k.GetFingerprint(), int(time.Since(k.GetCreatedAt().AsTime()).Hours()/24))
		}
		if sb := r.GetSandbox(); sb != nil {
			fmt.Fprintf(f.Out, "SANDBOX\n  mode %s, docker reachable %v, image %s present %v, containers %d\n", sb.GetMode(), sb.GetDockerReachable(), sb.GetImage(), sb.GetImagePresent(), sb.GetContainers())
			if sb.GetError() != "" {
				fmt.Fprintf(f.Out, "  error: %s\n", sb.GetError())
			}
		}
		if p := r.GetPairing(); p != nil {
			fmt.Fprintln(f.Out, "PAIRING")
			for ch, n := range p.GetPending() {
				fmt.Fprintf(f.Out, "  %-10s %d pending\n", ch, n)
			}
			for _, ch := range p.GetFullChannels() {
				fmt.Fprintf(f.Out, "  %-10s QUEUE FULL: approve or reject pending requests (moltbot pairing list)\n", ch)
			}
			if p.GetError() != "" {
				fmt.Fprintf(f.Out, "  error: %s\n", p.GetError())
			}
		}
		if len(r.GetChannels()) > 0 {
			fmt.Fprintln(f.Out, "CHANNELS")
			for _, c := range r.GetChannels() {
				fmt.Fprintf(f.Out, "  %-10s %s (dm %s, groups %s)\n", c.GetName(), channelState(c, time.Now()), c.GetDmPolicy(), c.GetGroupPolicy())
			}
		}
		if u := r.GetControlUiUrl(); u != "" {
			fmt.Fprintf(f.Out, "CONTROL UI\n  %s (approve a browser: moltbot devices list, moltbot devices approve <fingerprint>)\n", u)
		}
	}
	for _, w := range r.GetWarnings() {
		fmt.Fprintf(f.Out, "warning: %s\n", w)
	}
}

// channelState is one channel's line: connected with its last good poll,
// or the error and the next retry.
func channelState(c *gatewayv1.ChannelStatus, now time.Time) string {
	ago := func(t time.Time) string { return now.Sub(t).Round(time.Second).String() + " ago" }
	if c.GetConnected() {
		if c.GetLastOkAt() != nil {
			return "connected (last poll " + ago(c.GetLastOkAt().AsTime()) + ")"
		}
		return "connected"
	}
	if c.GetError() == "" {
		return "DISCONNECTED (not connected yet)"
	}
	state := "DISCONNECTED: " + c.GetError()
	if t := c.GetNextRetryAt(); t != nil {
		in := max(t.AsTime().Sub(now).Round(time.Second), 0)
		state += fmt.Sprintf("; retrying in %s", in)
	}
	if t := c.GetLastOkAt(); t != nil {
		state += "; last good poll " + ago(t.AsTime())
	}
	return state
}

// gatewayState is the one word status shows for a gateway it could not
// use: which of down, refused and locked out it is.
func gatewayState(e *cmdutil.Error) string {
	switch e.Kind {
	case cmdutil.KindDown:
		return "DOWN"
	case cmdutil.KindLockedOut:
		return "LOCKED OUT"
	case cmdutil.KindUnauthenticated, cmdutil.KindPermission:
		return "REFUSED"
	case cmdutil.KindWrongCA:
		return "WRONG CA"
	case cmdutil.KindNoBundle:
		return "NO BUNDLE"
	}
	return "ERROR"
}

// gatewayFailed prints the gateway's row and returns e, marked printed for
// the text form (the row says it all).
func gatewayFailed(f *cmdutil.Factory, e *cmdutil.Error) error {
	state := gatewayState(e)
	if f.JSON {
		_ = f.PrintJSON(map[string]any{"services": []map[string]any{{"name": "gateway", "up": false, "state": strings.ToLower(strings.ReplaceAll(state, " ", "_")), "error": e.Msg, "fix": e.Fix}}})
	} else {
		fmt.Fprintf(f.Out, "%-10s %-5s %s\n", "gateway", state, e.Msg)
		if e.Fix != "" {
			fmt.Fprintf(f.Out, "%-10s %-5s fix: %s\n", "", "", e.Fix)
		}
	}
	e.Printed = true
	return e
}
