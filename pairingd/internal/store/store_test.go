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
