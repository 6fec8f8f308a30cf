package inbox

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func open(t *testing.T, path string) *Inbox {
	t.Helper()
	q, err := Open(path)
	require.NoError(t, err)
	return q
}

func TestPutDoneReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inbound.db")
	q := open(t, path)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	for _, id := range []int64{7, 5, 6} {
		isNew, err := q.Put("tg", id, []byte{byte(id)})
		require.NoError(t, err)
		require.True(t, isNew)
	}
	isNew, err := q.Put("tg", 6, []byte{9})
	require.NoError(t, err)
	require.False(t, isNew, "a stored id is a duplicate")
	isNew, err = q.Put("other", 6, []byte{6})
	require.NoError(t, err)
	require.True(t, isNew, "ids are per account")

	un, err := q.Unclaimed("tg")
	require.NoError(t, err)
	require.Empty(t, un, "ids this process put are claimed")
	require.NoError(t, q.Done("tg", 6))
	isNew, err = q.Put("tg", 6, []byte{6})
	require.NoError(t, err)
	require.False(t, isNew, "a processed id is a duplicate")
	q.Release("tg", 7)
	un, err = q.Unclaimed("tg")
	require.NoError(t, err)
	require.Equal(t, []Entry{{ID: 7, Payload: []byte{7}}}, un)
	require.NoError(t, q.Close())

	// A new process (a crash or a restart): every unprocessed id is offered, oldest first.
	q = open(t, path)
	defer q.Close()
	un, err = q.Unclaimed("tg")
	require.NoError(t, err)
	require.Equal(t, []Entry{{ID: 5, Payload: []byte{5}}, {ID: 7, Payload: []byte{7}}}, un)
	un, err = q.Unclaimed("tg")
	require.NoError(t, err)
	require.Empty(t, un, "offered once per process")
	isNew, err = q.Put("tg", 6, nil)
	require.NoError(t, err)
	require.False(t, isNew, "processed ids survive a restart")
	p, d, err := q.Counts("tg")
	require.NoError(t, err)
	require.Equal(t, 2, p)
	require.Equal(t, 1, d)
}

func TestPruneForgetsOldDoneIds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inbound.db")
	q := open(t, path)
	now := time.Now()
	q.now = func() time.Time { return now }
	for id := range int64(5) {
		_, err := q.Put("tg", id, nil)
		require.NoError(t, err)
		require.NoError(t, q.Done("tg", id))
	}
	now = now.Add(Retain + time.Minute)
	_, err := q.Put("tg", 10, nil)
	require.NoError(t, err)
	require.NoError(t, q.Done("tg", 10))
	require.NoError(t, q.prune())
	p, d, err := q.Counts("tg")
	require.NoError(t, err)
	require.Zero(t, p)
	require.Equal(t, 1, d, "only the recent id is remembered")
	require.NoError(t, q.Close())
}

func TestPruneBoundsDoneIds(t *testing.T) {
	q := open(t, filepath.Join(t.TempDir(), "inbound.db"))
	defer q.Close()
	q.maxDone = 3
	for id := range int64(6) {
		_, err := q.Put("tg", id, nil)
		require.NoError(t, err)
		require.NoError(t, q.Done("tg", id))
	}
	require.NoError(t, q.prune())
	_, d, err := q.Counts("tg")
	require.NoError(t, err)
	require.Equal(t, 3, d)
	for id, dup := range map[int64]bool{0: false, 2: false, 3: true, 5: true} {
		isNew, err := q.Put("tg", id, nil)
		require.NoError(t, err)
		require.Equal(t, !dup, isNew, "id %d", id)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(filepath.Join(dir, "missing", "inbound.db"))
	require.ErrorContains(t, err, "open inbound queue")
	require.NoError(t, os.Mkdir(filepath.Join(dir, "d"), 0o700))
	_, err = Open(filepath.Join(dir, "d"))
	require.ErrorContains(t, err, "not a regular file")
	_, err = (&Inbox{}).Put("", 1, nil)
	require.ErrorContains(t, err, "account is empty")
}

// One poll's updates are stored together: duplicates (already pending or
// already done) are reported per item, the new ones are claimed and stored.
func TestPutAllOnePoll(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inbound.db")
	q := open(t, path)
	_, err := q.Put("tg", 1, []byte{1})
	require.NoError(t, err)
	_, err = q.Put("tg", 2, []byte{2})
	require.NoError(t, err)
	require.NoError(t, q.Done("tg", 2))

	fresh, err := q.PutAll("tg", []Item{{ID: 1, Payload: []byte{9}}, {ID: 2, Payload: []byte{9}}, {ID: 3, Payload: []byte{3}}, {ID: 4, Payload: []byte{4}}})
	require.NoError(t, err)
	require.Equal(t, []bool{false, false, true, true}, fresh)

	fresh, err = q.PutAll("tg", nil)
	require.NoError(t, err)
	require.Empty(t, fresh)

	// After a restart the stored ones (1, 3, 4; not the done 2) are offered, with their first payload.
	require.NoError(t, q.Close())
	q = open(t, path)
	defer q.Close()
	un, err := q.Unclaimed("tg")
	require.NoError(t, err)
	var ids []int64
	for _, e := range un {
		ids = append(ids, e.ID)
		if e.ID == 1 {
			require.Equal(t, []byte{1}, e.Payload)
		}
	}
	require.ElementsMatch(t, []int64{1, 3, 4}, ids)
}
