package pairing

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
)

// WatchOptions are the flags of `pairing watch`.
type WatchOptions struct {
	Client  ClientFunc
	Channel string
}

func newCmdWatch(f *cmdutil.Factory, runF func(*WatchOptions) error) *cobra.Command {
	o := &WatchOptions{Client: gatewayClient(f)}
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Print pairing events as they happen (new requests, a full queue, approvals)",
		Long:  "Streams until interrupted. With --json, one JSON object per line.",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(o)
			}
			return watchRun(c, f, o)
		},
	}
	cmd.Flags().StringVar(&o.Channel, "channel", "", "only this channel (default: all)")
	return cmd
}

func watchRun(c *cobra.Command, f *cmdutil.Factory, o *WatchOptions) error {
	pc, err := o.Client()
	if err != nil {
		return err
	}
	ctx, cancel := callCtx(c, 0)
	defer cancel()
	st, err := pc.Watch(ctx, &pairingv1.WatchRequest{Channel: o.Channel})
	if err != nil {
		return err
	}
	if _, err := st.Header(); err != nil {
		return err
	}
	fmt.Fprintln(f.Err, "watching pairing events (Ctrl-C to stop)")
	for {
		ev, err := st.Recv()
		if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
			return nil
		}
		if err != nil {
			return err
		}
		if f.JSON {
			b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(ev)
			if err != nil {
				return err
			}
			fmt.Fprintln(f.Out, string(b))
			continue
		}
		fmt.Fprintln(f.Out, describe(ev))
	}
}

func describe(ev *pairingv1.WatchResponse) string {
	r := ev.GetRequest()
	at := ev.GetAt().AsTime().Local().Format(time.TimeOnly)
	who := r.GetSenderId()
	if l := label(r.GetMeta()); l != "-" {
		who += " (" + l + ")"
	}
	switch ev.GetKind() {
	case pairingv1.WatchResponse_KIND_REQUESTED:
		return fmt.Sprintf("%s %s: %s asks to pair; approve with:\n  moltbot pairing approve %s %s", at, r.GetChannel(), who, r.GetChannel(), r.GetCode())
	case pairingv1.WatchResponse_KIND_QUEUE_FULL:
		return fmt.Sprintf("%s %s: QUEUE FULL: %s was told to try later; approve or reject pending requests (moltbot pairing list)", at, r.GetChannel(), who)
	}
	kind := strings.ToLower(strings.TrimPrefix(ev.GetKind().String(), "KIND_"))
	return fmt.Sprintf("%s %s: %s %s", at, r.GetChannel(), who, kind)
}
