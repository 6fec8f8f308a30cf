package status

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/moltbot/moltbot-secure/proto/gateway/v1"
)

func TestChannelState(t *testing.T) {
	now := time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(d)) }
	for _, tc := range []struct {
		name string
		in   *gatewayv1.ChannelStatus
		want string
	}{
		{"polling", &gatewayv1.ChannelStatus{Connected: true, LastOkAt: ts(-3 * time.Second)}, "connected (last poll 3s ago)"},
		{"local (no polls)", &gatewayv1.ChannelStatus{Connected: true}, "connected"},
		{"starting", &gatewayv1.ChannelStatus{}, "DISCONNECTED (not connected yet)"},
		{"failed, retrying", &gatewayv1.ChannelStatus{Error: "telegram getUpdates: 502 Bad Gateway", NextRetryAt: ts(4 * time.Second), LastOkAt: ts(-time.Minute)},
			"DISCONNECTED: telegram getUpdates: 502 Bad Gateway; retrying in 4s; last good poll 1m0s ago"},
		{"retry due", &gatewayv1.ChannelStatus{Error: "x", NextRetryAt: ts(-time.Second)}, "DISCONNECTED: x; retrying in 0s"},
	} {
		require.Equal(t, tc.want, channelState(tc.in, now), tc.name)
	}
}
