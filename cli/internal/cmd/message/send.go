package message

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
)

// SendOptions are the flags of `message send`.
type SendOptions struct {
	Client  func() (gatewayv1.GatewayClient, error)
	Channel string
	From    string
	Group   string
	Text    string
}

func newCmdSend(f *cmdutil.Factory, runF func(*SendOptions) error) *cobra.Command {
	o := &SendOptions{Client: func() (gatewayv1.GatewayClient, error) {
		cc, err := f.Gateway()
		if err != nil {
			return nil, err
		}
		return gatewayv1.NewGatewayClient(cc), nil
	}}
	cmd := &cobra.Command{
		Use:   "send --from <sender> [--group <id>] <text>",
		Short: "Send a message as <sender> on the local channel and print the bot's replies",
		Example: "  moltbot message send --channel local --from alice \"hi\"\n" +
			"  moltbot message send --from bob --group team \"status?\"",
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			o.Text = strings.Join(args, " ")
			if strings.TrimSpace(o.From) == "" {
				return &cmdutil.UsageError{Err: errors.New("--from: name the sender, e.g. --from alice")}
			}
			if runF != nil {
				return runF(o)
			}
			return sendRun(c.Context(), f, o)
		},
	}
	cmd.Flags().StringVar(&o.Channel, "channel", "local", "channel (only local accepts injected messages)")
	cmd.Flags().StringVar(&o.From, "from", "", "sender id (required)")
	cmd.Flags().StringVar(&o.Group, "group", "", "group id: send to a group instead of a DM")
	return cmd
}

func sendRun(ctx context.Context, f *cmdutil.Factory, o *SendOptions) error {
	gc, err := o.Client()
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	r, err := gc.Send(ctx, &gatewayv1.SendRequest{Channel: o.Channel, From: o.From, Text: o.Text, GroupId: o.Group})
	if err != nil {
		return err
	}
	if f.JSON {
		if err := f.PrintJSON(r); err != nil {
			return err
		}
		return undelivered(o.Channel, r)
	}
	for _, rep := range r.GetReplies() {
		fmt.Fprintln(f.Out, rep)
	}
	if len(r.GetReplies()) == 0 {
		fmt.Fprintln(f.Err, "(no reply)")
	}
	if r.GetReachedAgent() {
		fmt.Fprintf(f.Err, "delivered to the agent (session %s)\n", r.GetSessionKey())
	}
	return undelivered(o.Channel, r)
}

// undelivered is exit 5 when the message did not reach the agent.
func undelivered(channel string, r *gatewayv1.SendResponse) error {
	if r.GetReachedAgent() {
		return nil
	}
	return &cmdutil.UndeliveredError{Channel: channel, Decision: r.GetDecision()}
}
