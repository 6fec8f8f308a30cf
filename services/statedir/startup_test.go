package statedir

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type recLog struct{ lines []string }

func (l *recLog) Info(msg string, args ...any) {
	l.lines = append(l.lines, "INFO "+msg+" "+fmt.Sprint(args...))
}
func (l *recLog) Warn(msg string, args ...any) {
	l.lines = append(l.lines, "WARN "+msg+" "+fmt.Sprint(args...))
}

func mode(t *testing.T, p string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(p)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

func TestFixAtStartTightensWithoutFollowingSymlinks(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	write := func(rel string, m fs.FileMode) string {
		p := filepath.Join(dir, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte("x"), m))
		require.NoError(t, os.Chmod(p, m))
		return p
	}
	cfg := write("moltbot.json", 0o644)
	cred := write("credentials/telegram-allowFrom.json", 0o644)
	prof := write("agents/main/agent/auth-profiles.json", 0o640)
	narrow := write("keys/secrets.key", 0o400)
	pkiKey := write("pki/gateway-key.pem", 0o644)
	pkiCert := write("pki/ca.pem", 0o644)
	pkiShared := write("pki/gateway-auth.token", 0o440)
	outside := filepath.Join(t.TempDir(), "victim.json")
	require.NoError(t, os.WriteFile(outside, []byte("x"), 0o666))
	require.NoError(t, os.Chmod(outside, 0o666))
	link := filepath.Join(dir, "credentials", "link.json")
	require.NoError(t, os.Symlink(outside, link))
	outDir := t.TempDir()
	require.NoError(t, os.Chmod(outDir, 0o755))
	require.NoError(t, os.Symlink(outDir, filepath.Join(dir, "agents", "linkdir")))

	log := &recLog{}
	rep, err := FixAtStart(dir, filepath.Join(dir, "pki"), log)
	require.NoError(t, err)

	tests := []struct {
		path string
		want fs.FileMode
	}{
		{dir, 0o700},
		{cfg, 0o600},
		{cred, 0o600},
		{filepath.Dir(cred), 0o700},
		{prof, 0o600},
		{filepath.Join(dir, "agents", "main", "agent"), 0o700},
		{narrow, 0o400},  // already narrower: kept
		{pkiKey, 0o644},  // pki is checked, never changed
		{pkiCert, 0o644}, //
		{outside, 0o666}, // a symlink's target is never touched
		{outDir, 0o755},  // nor a symlinked directory's
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, mode(t, tc.path), tc.path)
	}
	changed := map[string]bool{}
	for _, c := range rep.Changes {
		changed[c.Path] = true
	}
	require.Len(t, rep.Changes, 9, "%v", rep.Changes) // 6 dirs, 3 files; pki skipped
	problems := map[string]string{}
	for _, p := range rep.Problems {
		problems[p.Path] = p.Message
	}
	require.Contains(t, problems[link], "symlink")
	require.Contains(t, problems[filepath.Join(dir, "agents", "linkdir")], "symlink")
	require.Contains(t, problems[pkiKey], "read-only")
	require.NotContains(t, problems, pkiCert, "public certs may be 0644")
	require.NotContains(t, problems, pkiShared, "the bootstrap token is shared with the CLI's group")

	all := strings.Join(log.lines, "\n")
	require.Contains(t, all, "INFO state dir: tightened permissions path"+cfg)
	require.Contains(t, all, "0644")
	require.Contains(t, all, "WARN")
	require.Equal(t, len(rep.Changes)+len(rep.Problems), len(log.lines), "every change and problem is logged")

	// A second start changes nothing.
	rep, err = FixAtStart(dir, filepath.Join(dir, "pki"), nil)
	require.NoError(t, err)
	require.Empty(t, rep.Changes)
}

func TestTighten(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))
	require.NoError(t, os.Chmod(file, 0o644))
	narrow := filepath.Join(dir, "n")
	require.NoError(t, os.WriteFile(narrow, []byte("x"), 0o400))
	target := filepath.Join(t.TempDir(), "target")
	require.NoError(t, os.WriteFile(target, []byte("x"), 0o644))
	require.NoError(t, os.Chmod(target, 0o644))
	link := filepath.Join(dir, "l")
	require.NoError(t, os.Symlink(target, link))
	sub := filepath.Join(dir, "d")
	require.NoError(t, os.Mkdir(sub, 0o755))
	require.NoError(t, os.Chmod(sub, 0o755))

	tests := []struct {
		name    string
		path    string
		want    fs.FileMode
		changed bool
		err     string
		after   fs.FileMode
	}{
		{"wide file", file, 0o600, true, "", 0o600},
		{"narrower kept", narrow, 0o600, false, "", 0o400},
		{"dir", sub, 0o700, true, "", 0o700},
		{"symlink refused", link, 0o600, false, "is a symlink: not followed", 0},
		{"missing", filepath.Join(dir, "nope"), 0o600, false, "no such file", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, changed, err := Tighten(tc.path, tc.want)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.changed, changed)
			require.Equal(t, tc.after, mode(t, tc.path))
			if changed {
				require.Equal(t, tc.after, c.To)
			}
		})
	}
	require.Equal(t, fs.FileMode(0o644), mode(t, target), "the symlink's target is untouched")
}
