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

// TestApproveOwner: --owner adds the approved sender to the channel's
// owners only after pairingd approved; a failed owner write says the sender
// is approved but not an owner; without a config store it is refused
// before pairingd.
func TestApproveOwner(t *testing.T) {
	ctx := auth.WithCaller(context.Background(), auth.Caller{ID: auth.RoleOwner, CertID: auth.IDCLI})
	has := func(n string) bool { return n == "telegram" }
	for _, tc := range []struct {
		name      string
		approve   error
		addErr    error
		noStore   bool
		wantErr   string
		wantOwner []string
		reached   bool
	}{
		{name: "owner added", wantOwner: []string{"telegram/42"}, reached: true},
		{name: "approve fails: no owner", approve: errors.New("wrong code"), wantErr: "wrong code", reached: true},
		{name: "owner write fails", addErr: errors.New("config invalid"), wantErr: "approved but NOT made an owner", wantOwner: []string{"telegram/42"}, reached: true},
		{name: "no config store", noStore: true, wantErr: "no config store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &upstream{approve: tc.approve}
			var owners []string
			cfg := Config{Client: up, HasChannel: has}
			if !tc.noStore {
				cfg.AddOwner = func(_ context.Context, ch, id string) error { owners = append(owners, ch+"/"+id); return tc.addErr }
			}
			s, err := New(cfg)
			require.NoError(t, err)
			_, err = s.Approve(ctx, &pairingv1.ApproveRequest{Channel: "telegram", Code: "ABCDEFGH", Owner: true})
			if tc.wantErr == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.wantErr)
			}
			require.Equal(t, tc.wantOwner, owners)
			require.Equal(t, tc.reached, up.md != nil, "reached pairingd")
		})
	}
}

type allowedUpstream struct {
	pairingv1.PairingClient
	senders []*pairingv1.AllowedSender
}

func (u *allowedUpstream) ListAllowed(context.Context, *pairingv1.ListAllowedRequest, ...grpc.CallOption) (*pairingv1.ListAllowedResponse, error) {
	return &pairingv1.ListAllowedResponse{Senders: u.senders}, nil
}

// TestListAllowedLetThrough: each approved sender carries what the active
// policy does with it; a channel the policy does not know stays unset.
func TestListAllowedLetThrough(t *testing.T) {
	up := &allowedUpstream{senders: []*pairingv1.AllowedSender{
		{Channel: "telegram", SenderId: "42"}, {Channel: "telegram", SenderId: "7"}, {Channel: "gone", SenderId: "1"},
	}}
	s, err := New(Config{Client: up, HasChannel: func(string) bool { return true },
		LetThrough: func(ch, id string) (bool, string, bool) {
			if ch != "telegram" {
				return false, "", false
			}
			if id == "7" {
				return true, "", true
			}
			return false, "dm.policy allowlist: add to channels.telegram.dm.allowFrom", true
		}})
	require.NoError(t, err)
	ctx := auth.WithCaller(context.Background(), auth.Caller{ID: auth.RoleOwner, CertID: auth.IDCLI})
	r, err := s.ListAllowed(ctx, &pairingv1.ListAllowedRequest{})
	require.NoError(t, err)
	got := r.GetSenders()
	require.Len(t, got, 3)
	require.NotNil(t, got[0].LetThrough)
	require.False(t, got[0].GetLetThrough())
	require.Contains(t, got[0].GetBlockedBecause(), "channels.telegram.dm.allowFrom")
	require.True(t, got[1].GetLetThrough())
	require.Empty(t, got[1].GetBlockedBecause())
	require.Nil(t, got[2].LetThrough, "unknown channel: not judged")
}
