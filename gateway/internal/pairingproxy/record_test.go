package pairingproxy

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

// decider answers like pairingd: err for every decision when set.
type decider struct {
	pairingv1.PairingClient
	err error
}

func (d *decider) Approve(context.Context, *pairingv1.ApproveRequest, ...grpc.CallOption) (*pairingv1.ApproveResponse, error) {
	if d.err != nil {
		return nil, d.err
	}
	return &pairingv1.ApproveResponse{SenderId: "42"}, nil
}

func (d *decider) Reject(context.Context, *pairingv1.RejectRequest, ...grpc.CallOption) (*pairingv1.RejectResponse, error) {
	if d.err != nil {
		return nil, d.err
	}
	return &pairingv1.RejectResponse{SenderId: "43"}, nil
}

func (d *decider) Revoke(context.Context, *pairingv1.RevokeRequest, ...grpc.CallOption) (*pairingv1.RevokeResponse, error) {
	if d.err != nil {
		return nil, d.err
	}
	return &pairingv1.RevokeResponse{}, nil
}

// events reads back what the log holds, verified under its key.
func events(t *testing.T, l *seclog.Log) []seclog.Line {
	t.Helper()
	var out []seclog.Line
	_, err := l.Verify(func(_ int, raw string) {
		var ln seclog.Line
		require.NoError(t, json.Unmarshal([]byte(raw), &ln))
		out = append(out, ln)
	})
	require.NoError(t, err)
	return out
}

// Every pairing decision through the proxy is recorded once, by the proxy,
// with the caller; the code itself never is.
func TestEveryDecisionIsRecordedOnce(t *testing.T) {
	lockout := status.Error(codes.ResourceExhausted, "too many wrong codes; retry in 60s")
	tests := []struct {
		name      string
		upErr     error
		notifyErr error
		call      func(ctx context.Context, s *Service) error
		kind      string // "" = nothing recorded
		target    string
		fields    map[string]string
	}{
		{"approve, notice sent", nil, nil, func(ctx context.Context, s *Service) error {
			_, err := s.Approve(ctx, &pairingv1.ApproveRequest{Channel: "telegram", Code: "ABCD2345"})
			return err
		}, "pairing.approve", "telegram:42", map[string]string{"notify": "sent"}},
		{"approve --no-notify", nil, nil, func(ctx context.Context, s *Service) error {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(NotifyHeader, "false"))
			_, err := s.Approve(ctx, &pairingv1.ApproveRequest{Channel: "telegram", Code: "ABCD2345"})
			return err
		}, "pairing.approve", "telegram:42", map[string]string{"notify": "skipped"}},
		{"approve, notice failed", nil, errors.New("telegram down"), func(ctx context.Context, s *Service) error {
			_, err := s.Approve(ctx, &pairingv1.ApproveRequest{Channel: "telegram", Code: "ABCD2345"})
			return err
		}, "pairing.approve", "telegram:42", map[string]string{"notify": "failed: telegram down"}},
		{"reject", nil, nil, func(ctx context.Context, s *Service) error {
			_, err := s.Reject(ctx, &pairingv1.RejectRequest{Channel: "telegram", Code: "ABCD2345"})
			return err
		}, "pairing.reject", "telegram:43", nil},
		{"revoke", nil, nil, func(ctx context.Context, s *Service) error {
			_, err := s.Revoke(ctx, &pairingv1.RevokeRequest{Channel: "telegram", SenderId: "44"})
			return err
		}, "pairing.revoke", "telegram:44", nil},
		{"approve locked out", lockout, nil, func(ctx context.Context, s *Service) error {
			_, err := s.Approve(ctx, &pairingv1.ApproveRequest{Channel: "telegram", Code: "ABCD2345"})
			return err
		}, "pairing.lockout", "telegram", map[string]string{"verb": "approve"}},
		{"reject locked out", lockout, nil, func(ctx context.Context, s *Service) error {
			_, err := s.Reject(ctx, &pairingv1.RejectRequest{Channel: "telegram", Code: "ABCD2345"})
			return err
		}, "pairing.lockout", "telegram", map[string]string{"verb": "reject"}},
		{"wrong code: pairingd decided nothing", status.Error(codes.NotFound, "no pending request with that code"), nil, func(ctx context.Context, s *Service) error {
			_, err := s.Approve(ctx, &pairingv1.ApproveRequest{Channel: "telegram", Code: "ABCD2345"})
			return err
		}, "", "", nil},
		{"unknown channel: refused before pairingd", nil, nil, func(ctx context.Context, s *Service) error {
			_, err := s.Revoke(ctx, &pairingv1.RevokeRequest{Channel: "irc", SenderId: "44"})
			return err
		}, "", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := make([]byte, seclog.KeySize)
			_, _ = rand.Read(key)
			l, err := seclog.Open(t.TempDir(), key)
			require.NoError(t, err)
			defer l.Close()
			s, err := New(Config{Client: &decider{err: tc.upErr}, HasChannel: func(n string) bool { return n == "telegram" }, Log: l,
				Notify: func(context.Context, string, string) error { return tc.notifyErr }})
			require.NoError(t, err)
			ctx := auth.WithCaller(context.Background(), auth.Caller{ID: auth.IDCLI, Addr: "172.18.0.1"})
			err = tc.call(ctx, s)
			if tc.upErr != nil || tc.kind == "" {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			got := events(t, l)
			if tc.kind == "" {
				require.Empty(t, got)
				return
			}
			require.Len(t, got, 1, "recorded once")
			require.Equal(t, seclog.Event{Kind: tc.kind, Actor: auth.IDCLI, Addr: "172.18.0.1", Target: tc.target, Fields: tc.fields}, got[0].Event)
			raw, _ := json.Marshal(got[0])
			require.NotContains(t, string(raw), "ABCD2345", "the code is a credential")
		})
	}
}
