package errs

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestText(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"dial failure", status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp: lookup pairingd on 127.0.0.11:53: no such host"`),
			"not reachable: dial tcp: lookup pairingd on 127.0.0.11:53: no such host"},
		{"server sentence", status.Error(codes.NotFound, "no pending pairing request with that code"), "no pending pairing request with that code"},
		{"wrapped status", fmt.Errorf("approve: %w", status.Error(codes.NotFound, "no such code")), "approve: no such code"},
		{"plain", errors.New("open x: permission denied"), "open x: permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Text(tc.err)
			require.Equal(t, tc.want, got)
			require.NotContains(t, got, "rpc error")
		})
	}
	require.True(t, IsConnectFailure(`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`))
	require.False(t, IsConnectFailure("secretsd is unreachable"))
}
