package atomicfile

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	require.NoError(t, WriteFile(p, []byte("one"), 0o600))
	require.NoError(t, WriteFile(p, []byte("two"), 0o600))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "two", string(b))
	st, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1, "no temp file left behind")

	err = WriteFile(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600)
	require.ErrorContains(t, err, filepath.Join(dir, "missing", "f"))
}

func TestWriteWithBackup(t *testing.T) {
	dir := t.TempDir()
	p, bak := filepath.Join(dir, "c.json"), filepath.Join(dir, "c.json.bak")
	require.NoError(t, WriteWithBackup(p, []byte("v1"), 0o600, bak))
	_, err := os.Stat(bak)
	require.True(t, os.IsNotExist(err), "no backup when there was no file")
	require.NoError(t, WriteWithBackup(p, []byte("v2"), 0o600, bak))
	b, _ := os.ReadFile(bak)
	require.Equal(t, "v1", string(b))
	b, _ = os.ReadFile(p)
	require.Equal(t, "v2", string(b))
}

// A full disk must fail the write and leave the old file whole.
func TestDiskFullKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root and mount permission): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	p := filepath.Join(dir, "moltbot.json")
	old := bytes.Repeat([]byte("o"), 40<<10)
	require.NoError(t, WriteFile(p, old, 0o600))
	err := WriteFile(p, bytes.Repeat([]byte("n"), 40<<10), 0o600)
	require.Error(t, err)
	require.Contains(t, err.Error(), "no space left")
	got, rerr := os.ReadFile(p)
	require.NoError(t, rerr)
	require.Equal(t, old, got)
	ents, _ := os.ReadDir(dir)
	require.Len(t, ents, 1, "temp file removed after the failure")
}

func TestIsTemp(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{".security.head4242", true},
		{".moltbot.json-12", true},
		{".x1", true},
		{"security.head", false},
		{".security.head", false},
		{".123", false},
		{"moltbot.json123", false},
		{".", false},
		{"", false},
	} {
		if got := IsTemp(tc.name); got != tc.want {
			t.Errorf("IsTemp(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The name WriteFile's temp file really has is one IsTemp recognises.
func TestIsTempMatchesWriteFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "security.head")
	seen := ""
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = WriteFile(target, []byte("x"), 0o600)
		}
	}()
	defer close(stop)
	for i := 0; i < 100000 && seen == ""; i++ {
		es, _ := os.ReadDir(dir)
		for _, e := range es {
			if e.Name() != "security.head" {
				seen = e.Name()
			}
		}
	}
	if seen == "" {
		t.Skip("never caught a temp file mid-write")
	}
	if !IsTemp(seen) {
		t.Fatalf("IsTemp(%q) = false for WriteFile's own temp file", seen)
	}
}
