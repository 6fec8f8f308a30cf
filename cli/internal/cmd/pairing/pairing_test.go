package pairing

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
)

func factory() *cmdutil.Factory {
	return &cmdutil.Factory{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}
}

func TestApproveFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr bool
		want    ApproveOptions
	}{
		{args: []string{"telegram", "ABCD2345"}, want: ApproveOptions{Channel: "telegram", Code: "ABCD2345"}},
		{args: []string{"local", "abcd2345", "--no-notify"}, want: ApproveOptions{Channel: "local", Code: "abcd2345", NoNotify: true}},
		{args: []string{"telegram", "ABCD2345", "--owner"}, want: ApproveOptions{Channel: "telegram", Code: "ABCD2345", Owner: true}},
		{args: []string{"telegram"}, wantErr: true},
		{args: []string{"a", "b", "c"}, wantErr: true},
	} {
		var got *ApproveOptions
		cmd := newCmdApprove(factory(), func(o *ApproveOptions) error { got = o; return nil })
		cmd.SetArgs(tc.args)
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		err := cmd.Execute()
		if tc.wantErr {
			require.Error(t, err, tc.args)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want.Channel, got.Channel)
		require.Equal(t, tc.want.Code, got.Code)
		require.Equal(t, tc.want.NoNotify, got.NoNotify)
		require.Equal(t, tc.want.Owner, got.Owner)
	}
}

func TestOtherVerbsFlags(t *testing.T) {
	var lo *ListOptions
	c := newCmdList(factory(), func(o *ListOptions) error { lo = o; return nil })
	c.SetArgs([]string{"--channel", "telegram", "--allowed"})
	require.NoError(t, c.Execute())
	require.Equal(t, "telegram", lo.Channel)
	require.True(t, lo.Allowed)

	var rj *RejectOptions
	c = newCmdReject(factory(), func(o *RejectOptions) error { rj = o; return nil })
	c.SetArgs([]string{"local", "ABCD2345"})
	require.NoError(t, c.Execute())
	require.Equal(t, "local", rj.Channel)
	require.Equal(t, "ABCD2345", rj.Code)

	var rv *RevokeOptions
	c = newCmdRevoke(factory(), func(o *RevokeOptions) error { rv = o; return nil })
	c.SetArgs([]string{"telegram", "1001"})
	require.NoError(t, c.Execute())
	require.Equal(t, "1001", rv.Sender)

	var w *WatchOptions
	c = newCmdWatch(factory(), func(o *WatchOptions) error { w = o; return nil })
	c.SetArgs([]string{"--channel", "local"})
	require.NoError(t, c.Execute())
	require.Equal(t, "local", w.Channel)
	c = newCmdWatch(factory(), func(*WatchOptions) error { return nil })
	c.SetArgs([]string{"extra"})
	c.SetErr(&bytes.Buffer{})
	require.Error(t, c.Execute())
}

type allowedClient struct {
	pairingv1.PairingClient
	senders []*pairingv1.AllowedSender
}

func (c allowedClient) ListAllowed(context.Context, *pairingv1.ListAllowedRequest, ...grpc.CallOption) (*pairingv1.ListAllowedResponse, error) {
	return &pairingv1.ListAllowedResponse{Senders: c.senders}, nil
}

func TestListAllowedShowsLetThrough(t *testing.T) {
	yes, no := true, false
	f := factory()
	pc := allowedClient{senders: []*pairingv1.AllowedSender{
		{Channel: "telegram", SenderId: "42", ApprovedAt: timestamppb.Now(), LetThrough: &no, BlockedBecause: "dm.policy allowlist: add to channels.telegram.dm.allowFrom"},
		{Channel: "local", SenderId: "7", ApprovedAt: timestamppb.Now(), LetThrough: &yes},
		{Channel: "slack", SenderId: "9", ApprovedAt: timestamppb.Now()},
	}}
	c := newCmdList(f, nil)
	c.SetArgs([]string{"--allowed"})
	c.SetOut(&bytes.Buffer{})
	o := &ListOptions{Client: func() (pairingv1.PairingClient, error) { return pc, nil }, Allowed: true}
	require.NoError(t, listRun(c, f, o))
	lines := strings.Split(strings.TrimSpace(f.Out.(*bytes.Buffer).String()), "\n")
	require.Len(t, lines, 4)
	require.Contains(t, lines[0], "LET THROUGH")
	for i, want := range []string{
		"no (dm.policy allowlist: add to channels.telegram.dm.allowFrom)",
		"yes",
		"unknown (the gateway did not say)",
	} {
		require.True(t, strings.HasSuffix(strings.TrimSpace(lines[i+1]), want), lines[i+1])
	}
}
