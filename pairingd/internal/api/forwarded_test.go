package api

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
)

func TestCallerKey(t *testing.T) {
	for _, tc := range []struct {
		name, id, fwd, want string
	}{
		{"cli direct", auth.IDCLI, "", "cli"},
		{"gateway own", auth.IDGateway, "", "gateway"},
		{"gateway for cli", auth.IDGateway, "cli", "gateway>cli"},
		{"forwarding trusted only from the gateway", auth.IDCLI, "other", "cli"},
		{"bad forwarded value ignored", auth.IDGateway, "CLI\nx", "gateway"},
		{"overlong forwarded value ignored", auth.IDGateway, "abcdefghijklmnopqrstuvwxyz0123456789", "gateway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := auth.WithCaller(context.Background(), auth.Caller{ID: tc.id})
			if tc.fwd != "" {
				ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(OnBehalfOfHeader, tc.fwd))
			}
			require.Equal(t, tc.want, callerKey(ctx))
		})
	}
	require.Equal(t, "unauthenticated", callerKey(context.Background()))
}

// A brute force forwarded by the gateway's proxy locks out "gateway>cli"
// only: the gateway's own calls and the CLI's direct calls still approve.
func TestForwardedLockoutIsSeparate(t *testing.T) {
	h := newHarness(t)
	gw := as(auth.IDGateway)
	proxied := metadata.AppendToOutgoingContext(as(auth.IDGateway), OnBehalfOfHeader, auth.IDCLI)
	codes3 := make([]string, 0, 3)
	for _, s := range []string{"1", "2", "3"} {
		r, err := h.client.Request(gw, &pairingv1.RequestRequest{Channel: "telegram", SenderId: s})
		require.NoError(t, err)
		codes3 = append(codes3, r.GetCode())
	}
	locked := false
	for i := 0; i < 50; i++ {
		_, err := h.client.Approve(proxied, &pairingv1.ApproveRequest{Channel: "telegram", Code: "22222222"})
		require.Error(t, err)
		if status.Code(err) == codes.ResourceExhausted {
			locked = true
		}
	}
	require.True(t, locked)
	_, err := h.client.Approve(proxied, &pairingv1.ApproveRequest{Channel: "telegram", Code: codes3[0]})
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "the forwarded caller is locked")
	_, err = h.client.Approve(gw, &pairingv1.ApproveRequest{Channel: "telegram", Code: codes3[1]})
	require.NoError(t, err, "the gateway's own key is not")
	_, err = h.client.Approve(as(auth.IDCLI), &pairingv1.ApproveRequest{Channel: "telegram", Code: codes3[2]})
	require.NoError(t, err, "nor the CLI's direct key")
}
