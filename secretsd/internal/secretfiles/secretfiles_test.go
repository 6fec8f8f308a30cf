package secretfiles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/errs"
)

func TestPut(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	require.NoError(t, os.Symlink(filepath.Join(outside, "victim"), filepath.Join(dir, "link")))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o700))
	s := New(dir)
	tests := []struct {
		name    string
		content string
		err     error
		msg     string
	}{
		{"openai.key", "sk-1", nil, ""},
		{"a_b-C.9", "x", nil, ""},
		{"../escape", "x", errs.ErrInvalidArgument, "no slashes"},
		{"sub/x", "x", errs.ErrInvalidArgument, "no slashes"},
		{".hidden", "x", errs.ErrInvalidArgument, "not starting with a dot"},
		{"..", "x", errs.ErrInvalidArgument, ""},
		{"", "x", errs.ErrInvalidArgument, ""},
		{"sp ace", "x", errs.ErrInvalidArgument, ""},
		{"bidi\u202Ex", "x", errs.ErrInvalidArgument, ""},
		{strings.Repeat("a", 129), "x", errs.ErrInvalidArgument, ""},
		{"big", strings.Repeat("a", MaxSize+1), errs.ErrInvalidArgument, "the limit is 1 MiB"},
		{"link", "x", errs.ErrFailedPrecondition, "not a regular file"},
		{"sub", "x", errs.ErrFailedPrecondition, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, replaced, err := s.Put(tt.name, []byte(tt.content))
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				require.ErrorContains(t, err, tt.msg)
				return
			}
			require.NoError(t, err)
			require.False(t, replaced)
			require.Equal(t, int64(len(tt.content)), info.Size)
			b, err := os.ReadFile(filepath.Join(dir, tt.name))
			require.NoError(t, err)
			require.Equal(t, tt.content, string(b))
			st, err := os.Stat(filepath.Join(dir, tt.name))
			require.NoError(t, err)
			require.Equal(t, os.FileMode(Mode), st.Mode().Perm())
		})
	}
	_, err := os.Stat(filepath.Join(outside, "victim"))
	require.ErrorIs(t, err, os.ErrNotExist, "never written through the symlink")

	_, replaced, err := s.Put("openai.key", []byte("sk-2"))
	require.NoError(t, err)
	require.True(t, replaced)
	b, _ := os.ReadFile(filepath.Join(dir, "openai.key"))
	require.Equal(t, "sk-2", string(b))

	list, err := s.List()
	require.NoError(t, err)
	var names []string
	for _, i := range list {
		names = append(names, i.Name)
	}
	require.Equal(t, []string{"a_b-C.9", "openai.key"}, names, "no symlinks, dirs or dotfiles")
	require.Equal(t, "${file:openai.key}", list[1].Reference())
}

func TestNotConfigured(t *testing.T) {
	for _, s := range []*Store{New(""), New(filepath.Join(t.TempDir(), "missing"))} {
		_, _, err := s.Put("a", []byte("x"))
		require.ErrorIs(t, err, errs.ErrFailedPrecondition)
		_, err = s.List()
		require.ErrorIs(t, err, errs.ErrFailedPrecondition)
	}
}
