package seckey

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAcrossImport: the key sealed under the old keyring opens under the
// new one after Unseal (old) -> keyring replaced -> Reseal (new); a Reseal
// without an Unseal is refused and writes nothing.
func TestAcrossImport(t *testing.T) {
	ctx := context.Background()
	s := newSealer(t)
	st := New(t.TempDir(), s)
	key, created, err := st.LoadOrCreate(ctx)
	require.NoError(t, err)
	require.True(t, created)

	a := st.AcrossImport()
	require.ErrorContains(t, a.Reseal(ctx), "without a preceding Unseal")
	require.NoError(t, a.Unseal(ctx))
	s.key = newSealer(t).key // the import replaced the keyring
	_, err = st.Unseal(ctx)
	require.Error(t, err, "the old envelope must not open under the new keyring")
	require.NoError(t, a.Reseal(ctx))
	got, err := st.Unseal(ctx)
	require.NoError(t, err)
	require.Equal(t, key, got)
	require.ErrorContains(t, a.Reseal(ctx), "without a preceding Unseal", "the held key is forgotten after Reseal")
}
