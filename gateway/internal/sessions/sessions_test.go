package sessions

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/errs"
)

func TestStorePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions", "sessions.json")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	s, err := Open(path, clock)
	require.NoError(t, err)
	require.Empty(t, s.List())
	require.NoError(t, s.Touch(Session{Key: "agent:main:main", AgentID: "main", Channel: "local", Main: true}))

	// A new session is on disk at once.
	s2, err := Open(path, clock)
	require.NoError(t, err)
	require.Len(t, s2.List(), 1)
	require.Equal(t, now, s2.List()[0].LastActiveAt)

	// Activity on a known one is batched until Flush or FlushInterval.
	now = now.Add(time.Second)
	require.NoError(t, s.Touch(Session{Key: "agent:main:main", AgentID: "main", Channel: "local", Main: true}))
	s3, err := Open(path, clock)
	require.NoError(t, err)
	require.Equal(t, now.Add(-time.Second), s3.List()[0].LastActiveAt)
	require.NoError(t, s.Flush())
	s4, err := Open(path, clock)
	require.NoError(t, err)
	require.Equal(t, now, s4.List()[0].LastActiveAt)

	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestStoreRefusesBadFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte("{not json"), 0o600))
	_, err := Open(bad, nil)
	require.ErrorIs(t, err, errs.ErrFailedPrecondition)
	require.ErrorContains(t, err, bad)
	newer := filepath.Join(dir, "newer.json")
	require.NoError(t, os.WriteFile(newer, []byte(`{"version": 9, "sessions": []}`), 0o600))
	_, err = Open(newer, nil)
	require.ErrorContains(t, err, "version 9")
}

// The index is bounded like every JSON input: a deep or duplicated file is
// refused before the decoder runs, naming the file and the limit.
func TestStoreRefusesUnboundedFile(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"deep", `{"version": 1, "sessions": ` + strings.Repeat("[", 50000) + strings.Repeat("]", 50000) + `}`, "file nests 50001 deep; the limit is 64"},
		{"duplicate key", `{"version": 1, "version": 2, "sessions": []}`, `key "version" appears twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "sessions.json")
			require.NoError(t, os.WriteFile(p, []byte(tt.body), 0o600))
			_, err := Open(p, nil)
			require.ErrorContains(t, err, p)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// New sessions touched at once from many goroutines all reach the file:
// the write happens outside the lock, and an older snapshot never
// overwrites a newer one.
func TestStoreConcurrentNewSessionsAllWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions", "sessions.json")
	s, err := Open(path, nil)
	require.NoError(t, err)
	const n = 64
	errc := make(chan error, n)
	for i := range n {
		go func() {
			errc <- s.Touch(Session{Key: fmt.Sprintf("agent:main:telegram:dm:%d", i), AgentID: "main", Channel: "telegram", Sandboxed: true})
		}()
	}
	for range n {
		require.NoError(t, <-errc)
	}
	again, err := Open(path, nil)
	require.NoError(t, err)
	require.Len(t, again.List(), n)
}
