// Package seclogcmd is `moltbot security log`.
package seclogcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
)

// Options are the flags of `security log`.
type Options struct {
	Follow bool
	Verify bool
}

// NewCmd returns `moltbot security log`.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Show the security event log (HMAC-keyed chain; --verify checks every line and the head)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if runF != nil {
				return runF(o)
			}
			return run(f, o)
		},
	}
	cmd.Flags().BoolVarP(&o.Follow, "follow", "f", false, "keep printing new events")
	cmd.Flags().BoolVar(&o.Verify, "verify", false, "verify the keyed chain and its head in the gateway (which holds the key); exit 3 naming the first bad line")
	return cmd
}

func run(f *cmdutil.Factory, o *Options) error {
	cc, err := f.Gateway()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	stream, err := gatewayv1.NewGatewayClient(cc).SecurityLog(ctx, &gatewayv1.SecurityLogRequest{Follow: o.Follow, Verify: o.Verify})
	if err != nil {
		return err
	}
	n := 0
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if r.GetVerifyError() != "" {
			fmt.Fprintln(f.Err, "verify failed:", r.GetVerifyError())
			return &cmdutil.DegradedError{Msg: r.GetVerifyError()}
		}
		n++
		if n == 1 {
			if note := archiveNote(r.GetLine()); note != "" {
				fmt.Fprintln(f.Err, note)
			}
		}
		if f.JSON {
			fmt.Fprintln(f.Out, r.GetLine())
			continue
		}
		fmt.Fprintln(f.Out, human(r.GetLine()))
	}
	if o.Verify {
		fmt.Fprintf(f.Err, "verified %d lines: the chain is intact\n", n)
	}
	return nil
}

func human(line string) string {
	var l struct {
		Seq    uint64            `json:"seq"`
		TS     string            `json:"ts"`
		Kind   string            `json:"kind"`
		Actor  string            `json:"actor"`
		Addr   string            `json:"addr"`
		Target string            `json:"target"`
		Fields map[string]string `json:"fields"`
	}
	if json.Unmarshal([]byte(line), &l) != nil {
		return line
	}
	s := fmt.Sprintf("%5d %s %-16s", l.Seq, l.TS, l.Kind)
	for _, kv := range [][2]string{{"actor", l.Actor}, {"addr", l.Addr}, {"target", l.Target}} {
		if kv[1] != "" {
			s += " " + kv[0] + "=" + kv[1]
		}
	}
	for k, v := range l.Fields {
		s += " " + k + "=" + v
	}
	return s
}

// archiveNote explains a chain whose first line says the log before it was
// moved aside at start: an older unkeyed log, or one that failed
// verification (edited while the gateway was down, or its key was lost).
// The chain from there on verifies; the archived file is the evidence.
func archiveNote(line string) string {
	var l struct {
		Kind   string            `json:"kind"`
		Fields map[string]string `json:"fields"`
	}
	if json.Unmarshal([]byte(line), &l) != nil {
		return ""
	}
	switch l.Kind {
	case "log.archived":
		return fmt.Sprintf("warning: the log before line 1 did not verify when the gateway started and was kept aside as logs/%s (%s): inspect it", l.Fields["archived"], l.Fields["reason"])
	case "log.keyed":
		return fmt.Sprintf("note: the log before line 1 was written unkeyed by an older version and is kept, unverifiable, as logs/%s", l.Fields["archived"])
	}
	return ""
}
