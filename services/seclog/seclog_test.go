package seclog

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func write(t *testing.T, dir string, n int) {
	t.Helper()
	l, err := Open(dir)
	require.NoError(t, err)
	for i := 0; i < n; i++ {
		l.Record(Event{Kind: "auth.failure", Addr: "10.0.0.1", Fields: map[string]string{"i": string(rune('a' + i%26))}})
	}
	require.NoError(t, l.Flush(context.Background()))
	require.NoError(t, l.Close())
}

func TestChainVerifiesAndSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, 5)
	write(t, dir, 5) // reopen continues the chain
	n, err := Verify(dir, nil)
	require.NoError(t, err)
	require.Equal(t, 10, n)
	fi, err := os.Stat(filepath.Join(dir, LogFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestTamperingIsDetectedAndNamed(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(lines []string) []string
		line   int
	}{
		{"edit a middle line", func(l []string) []string { l[3] = strings.Replace(l[3], "10.0.0.1", "10.0.0.9", 1); return l }, 5},
		{"remove a middle line", func(l []string) []string { return append(l[:3], l[4:]...) }, 4},
		{"edit the last line", func(l []string) []string { l[9] = strings.Replace(l[9], "10.0.0.1", "10.0.0.9", 1); return l }, 10},
		{"remove the last line", func(l []string) []string { return l[:9] }, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, 10)
			p := filepath.Join(dir, LogFile)
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			require.NoError(t, os.WriteFile(p, []byte(strings.Join(tc.mutate(lines), "\n")+"\n"), 0o600))
			_, err = Verify(dir, nil)
			var ve *VerifyError
			require.True(t, errors.As(err, &ve), "err: %v", err)
			require.Equal(t, tc.line, ve.Line, ve.Error())
		})
	}
}

func TestSubscribeSeesNewLines(t *testing.T) {
	l, err := Open(t.TempDir())
	require.NoError(t, err)
	defer l.Close()
	ch, cancel := l.Subscribe()
	defer cancel()
	l.Record(Event{Kind: "key.rotate", Target: "k2"})
	line := <-ch
	require.Contains(t, line, `"key.rotate"`)
}

// A reader that sees a line the writer appended before it updated the head
// (the race of a live log) must not call the log edited; a head that counts
// more lines than the file holds still fails.
func TestVerifyWhileTheWriterAppends(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, 3)
	headPath := filepath.Join(dir, HeadFile)
	old, err := os.ReadFile(headPath)
	require.NoError(t, err)
	write(t, dir, 2)
	require.NoError(t, os.WriteFile(headPath, old, 0o600)) // head not yet updated
	n, err := Verify(dir, nil)
	require.NoError(t, err)
	require.Equal(t, 5, n)

	b, err := os.ReadFile(filepath.Join(dir, LogFile))
	require.NoError(t, err)
	lines := strings.SplitAfter(string(b), "\n")
	require.NoError(t, os.WriteFile(filepath.Join(dir, LogFile), []byte(strings.Join(lines[:2], "")), 0o600))
	_, err = Verify(dir, nil)
	var ve *VerifyError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, 3, ve.Line, "the head's last line is missing")
}
