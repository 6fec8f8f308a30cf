package store

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/errs"
)

func TestBoltRoundTripAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials", "pairing.db")
	st, err := Open(path)
	require.NoError(t, err)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, st.PutPending(Pending{Channel: "telegram", SenderID: "1", Code: "ABCD2345", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	require.NoError(t, st.PutPending(Pending{Channel: "local", SenderID: "alice", Code: "EFGH2345", CreatedAt: now.Add(time.Second)}))

	_, err = st.Promote("telegram", "nobody", now)
	require.ErrorIs(t, err, errs.ErrNotFound)
	p, err := st.Promote("telegram", "1", now)
	require.NoError(t, err)
	require.Equal(t, "ABCD2345", p.Code)
	require.ErrorIs(t, st.RemoveAllowed("telegram", "2"), errs.ErrNotFound)

	// A second opener is refused with a clear error instead of hanging.
	_, err = Open(path)
	require.ErrorIs(t, err, errs.ErrUnavailable)
	require.NoError(t, st.Close())

	st, err = Open(path)
	require.NoError(t, err)
	defer st.Close()
	ok, err := st.IsAllowed("telegram", "1")
	require.NoError(t, err)
	require.True(t, ok)
	all, err := st.ListPending("")
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.Equal(t, "alice", all[0].SenderID)
	al, err := st.ListAllowed("telegram")
	require.NoError(t, err)
	require.Equal(t, []Allowed{{Channel: "telegram", SenderID: "1", ApprovedAt: now}}, al)
	none, err := st.ListPending("discord")
	require.NoError(t, err)
	require.Empty(t, none)
	require.NoError(t, st.DeletePending("local", "alice", "ghost"))
	require.NoError(t, st.DeletePending("nochannel", "x"))
}

// The in-memory allowlist follows every write and what a reopen reads: the
// answer is always the file's, for each writer and on each channel.
func TestIsAllowedFollowsWritesAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials", "pairing.db")
	st, err := Open(path)
	require.NoError(t, err)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	allowed := func(ch, id string) bool {
		ok, err := st.IsAllowed(ch, id)
		require.NoError(t, err)
		return ok
	}
	require.NoError(t, st.PutPending(Pending{Channel: "telegram", SenderID: "1", Code: "ABCD2345", CreatedAt: now}))
	require.False(t, allowed("telegram", "1"), "pending is not allowed")
	_, err = st.Promote("telegram", "1", now)
	require.NoError(t, err)
	require.True(t, allowed("telegram", "1"))
	require.False(t, allowed("local", "1"), "per channel")
	require.NoError(t, st.Import(nil, []Allowed{{Channel: "local", SenderID: "alice", ApprovedAt: now}, {Channel: "telegram", SenderID: "2", ApprovedAt: now}}))
	require.True(t, allowed("local", "alice"))
	require.True(t, allowed("telegram", "2"))
	require.NoError(t, st.RemoveAllowed("telegram", "1"))
	require.False(t, allowed("telegram", "1"))
	require.ErrorIs(t, st.RemoveAllowed("telegram", "1"), errs.ErrNotFound)

	require.NoError(t, st.Close())
	st, err = Open(path)
	require.NoError(t, err)
	defer st.Close()
	require.False(t, allowed("telegram", "1"))
	require.True(t, allowed("telegram", "2"))
	require.True(t, allowed("local", "alice"))
	require.False(t, allowed("local", "bob"))
}
