package pairingproxy

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// upstream records what reaches pairingd.
type upstream struct {
	pairingv1.PairingClient
	md      metadata.MD
	approve error
}

func (u *upstream) Approve(ctx context.Context, in *pairingv1.ApproveRequest, _ ...grpc.CallOption) (*pairingv1.ApproveResponse, error) {
	u.md, _ = metadata.FromOutgoingContext(ctx)
	if u.approve != nil {
		return nil, u.approve
	}
	return &pairingv1.ApproveResponse{SenderId: "42"}, nil
}

func TestApprove(t *testing.T) {
	up := &upstream{}
	var notified []string
	s, err := New(Config{Client: up, HasChannel: func(n string) bool { return n == "telegram" },
		Notify: func(_ context.Context, ch, id string) error { notified = append(notified, ch+"/"+id); return nil }})
	require.NoError(t, err)
	ctx := auth.WithCaller(metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer secret")), auth.Caller{ID: auth.RoleOwner, CertID: auth.IDCLI})

	_, err = s.Approve(ctx, &pairingv1.ApproveRequest{Channel: "nope", Code: "ABCDEFGH"})
	require.ErrorIs(t, err, errs.ErrInvalidArgument)
	require.ErrorContains(t, err, `channel "nope"`)
	require.Nil(t, up.md, "refused before pairingd")

	r, err := s.Approve(ctx, &pairingv1.ApproveRequest{Channel: "telegram", Code: "ABCDEFGH"})
	require.NoError(t, err)
	require.Equal(t, "42", r.GetSenderId())
	require.Equal(t, []string{auth.RoleOwner}, up.md.Get(OnBehalfOfHeader))
	require.Empty(t, up.md.Get("authorization"), "the client's token never crosses")
	require.Equal(t, []string{"telegram/42"}, notified)

	noNotify := metadata.NewIncomingContext(ctx, metadata.Pairs(NotifyHeader, "false"))
	_, err = s.Approve(noNotify, &pairingv1.ApproveRequest{Channel: "telegram", Code: "ABCDEFGH"})
	require.NoError(t, err)
	require.Len(t, notified, 1, "--no-notify")

	up.approve = errors.New("boom")
	_, err = s.Approve(ctx, &pairingv1.ApproveRequest{Channel: "telegram", Code: "ABCDEFGH"})
	require.Error(t, err)
	require.Len(t, notified, 1, "no notice for a failed approve")

	_, err = s.Request(ctx, &pairingv1.RequestRequest{})
	require.ErrorIs(t, err, errs.ErrPermissionDenied)
}
