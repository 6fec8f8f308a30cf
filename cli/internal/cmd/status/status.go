// Package status is `moltbot status`.
package status

import (
	"context"
	"fmt"
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
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := gatewayv1.NewGatewayClient(cc).Status(ctx, &gatewayv1.StatusRequest{All: o.All})
	if err != nil {
		if f.JSON {
			_ = f.PrintJSON(map[string]any{"services": []map[string]any{{"name": "gateway", "up": false, "error": err.Error()}}})
		} else {
			fmt.Fprintf(f.Out, "%-10s %-5s %s\n", "gateway", "DOWN", err)
		}
		return &cmdutil.DegradedError{Msg: "gateway unreachable"}
	}
	down := 0
	for _, s := range resp.GetServices() {
		if !s.GetUp() {
			down++
		}
	}
	if f.JSON {
		if err := f.PrintJSON(resp); err != nil {
			return err
		}
	} else {
		print(f, resp)
	}
	if down > 0 {
		return &cmdutil.DegradedError{Msg: fmt.Sprintf("%d service(s) down", down)}
	}
	return nil
}

func print(f *cmdutil.Factory, r *gatewayv1.StatusResponse) {
	for _, s := range r.GetServices() {
		state, detail := "up", s.GetVersion()
		if !s.GetUp() {
			state, detail = "DOWN", s.GetError()
		}
		fmt.Fprintf(f.Out, "%-10s %-5s %s\n", s.GetName(), state, detail)
	}
	fmt.Fprintf(f.Out, "auth: %s, token %s\n", r.GetAuthMode(), r.GetTokenStrength())
	for _, w := range r.GetWarnings() {
		fmt.Fprintf(f.Out, "warning: %s\n", w)
	}
}
