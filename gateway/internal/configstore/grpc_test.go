package configstore

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/moltbot/moltbot-secure/services/errs"
)

type pingOnly struct {
	Secrets
	err error
}

func (p pingOnly) Ping(context.Context) error { return p.err }

// A refusal of the gateway's credentials names the refusal and its fix,
// never "unreachable"; a down secretsd still says unreachable.
func TestSecretsdRefusalNamesTheFix(t *testing.T) {
	tests := []struct {
		name      string
		remote    error
		class     error
		want      []string
		notWanted string
	}{
		{"bad token", status.Error(codes.Unauthenticated, "invalid token"), errs.ErrUnauthenticated,
			[]string{"secretsd refused the gateway's credentials", "moltbot certs init", "digests.json", "invalid token"}, "unreachable"},
		{"not in table", status.Error(codes.PermissionDenied, "gateway may not call x"), errs.ErrPermissionDenied,
			[]string{"secretsd refused the gateway's credentials", "moltbot certs init"}, "unreachable"},
		{"locked out", status.Error(codes.ResourceExhausted, "too many failed authentication attempts from this address: retry after 60 s"), errs.ErrResourceExhausted,
			[]string{"secretsd refused the gateway's credentials", "locked the gateway out", "retry after 60 s"}, "unreachable"},
		{"down", status.Error(codes.Unavailable, "connection refused"), errs.ErrUnavailable,
			[]string{"secretsd is unreachable"}, "refused the gateway"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := fromStatus(tc.remote)
			require.ErrorIs(t, err, tc.class)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			require.NotContains(t, err.Error(), tc.notWanted)
			require.NotContains(t, err.Error(), "rpc error")
		})
	}
}

func TestWaitForSecretsdStopsAtARefusal(t *testing.T) {
	dir := t.TempDir()
	st, err := New(Config{Path: filepath.Join(dir, "moltbot.json"), StateDir: dir, StartWait: 10 * time.Second,
		Secrets: pingOnly{err: fromStatus(status.Error(codes.Unauthenticated, "invalid token"))}})
	require.NoError(t, err)
	start := time.Now()
	err = st.WaitForSecretsd(context.Background())
	require.Less(t, time.Since(start), 2*time.Second, "a refusal is final: no waiting")
	require.True(t, errors.Is(err, ErrSecretsdRefused))
	require.False(t, strings.Contains(err.Error(), "unreachable"), err.Error())
}
