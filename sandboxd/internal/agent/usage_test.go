package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/sandboxd/internal/agentproto"
)

// duBytes is GNU du's figure for root in bytes (-s summary, -x one
// filesystem, -B1 exact): the reference the walk must match.
func duBytes(t *testing.T, root string) int64 {
	t.Helper()
	if _, err := exec.LookPath("du"); err != nil {
		t.Skip("du not installed: nothing to compare against")
	}
	out, err := exec.Command("du", "-s", "-x", "-B1", root).Output()
	require.NoError(t, err)
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	require.NoError(t, err)
	return n
}

func write(t *testing.T, path string, size int) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, make([]byte, size), 0o600))
}

func TestDiskUsageMatchesDu(t *testing.T) {
	outside := t.TempDir()
	write(t, filepath.Join(outside, "big"), 8<<20)
	tests := []struct {
		name  string
		build func(t *testing.T, root string)
	}{
		{"empty", func(*testing.T, string) {}},
		{"files and directories", func(t *testing.T, root string) {
			write(t, filepath.Join(root, "a"), 1)
			write(t, filepath.Join(root, "d/b"), 5000)
			write(t, filepath.Join(root, "d/e/f/c"), 1<<20)
			require.NoError(t, os.MkdirAll(filepath.Join(root, "empty/dirs/only"), 0o700))
		}},
		{"hard links once", func(t *testing.T, root string) {
			write(t, filepath.Join(root, "x"), 3<<20)
			require.NoError(t, os.Link(filepath.Join(root, "x"), filepath.Join(root, "y")))
			require.NoError(t, os.MkdirAll(filepath.Join(root, "d"), 0o700))
			require.NoError(t, os.Link(filepath.Join(root, "x"), filepath.Join(root, "d/z")))
		}},
		{"symlinks never followed", func(t *testing.T, root string) {
			require.NoError(t, os.Symlink(filepath.Join(outside, "big"), filepath.Join(root, "file-link")))
			require.NoError(t, os.Symlink(outside, filepath.Join(root, "dir-link")))
			require.NoError(t, os.Symlink("/", filepath.Join(root, "root-link")))
			require.NoError(t, os.Symlink("dangling", filepath.Join(root, "dangling")))
		}},
		{"sparse file counts its blocks", func(t *testing.T, root string) {
			f, err := os.Create(filepath.Join(root, "sparse"))
			require.NoError(t, err)
			require.NoError(t, f.Truncate(1<<30))
			_, err = f.WriteAt([]byte("x"), 1<<29)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			tt.build(t, root)
			got, err := DiskUsage(root, time.Now().Add(time.Minute))
			require.NoError(t, err)
			require.Equal(t, duBytes(t, root), got)
			require.Less(t, got, int64(8<<20), "nothing outside root is counted")
		})
	}
}

func TestDiskUsageRefuses(t *testing.T) {
	tests := []struct {
		name     string
		build    func(t *testing.T, root string) string // returns the path to measure
		deadline time.Duration
		want     string
	}{
		{"root is a symlink", func(t *testing.T, root string) string {
			link := filepath.Join(t.TempDir(), "link")
			require.NoError(t, os.Symlink(root, link))
			return link
		}, time.Minute, "not a directory"},
		{"root missing", func(t *testing.T, root string) string { return filepath.Join(root, "nope") }, time.Minute, "no such file"},
		{"deeper than the limit", func(t *testing.T, root string) string {
			d := root
			for range MaxUsageDepth + 1 {
				d = filepath.Join(d, "d")
				require.NoError(t, os.Mkdir(d, 0o700))
			}
			return root
		}, time.Minute, "nested deeper than 512 levels"},
		{"past the deadline", func(t *testing.T, root string) string {
			for i := range 1100 {
				require.NoError(t, os.WriteFile(filepath.Join(root, strconv.Itoa(i)), nil, 0o600))
			}
			return root
		}, -time.Second, "took too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			path := tt.build(t, root)
			_, err := DiskUsage(path, time.Now().Add(tt.deadline))
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// An unreadable directory is an error, not a smaller figure. Root reads
// everything, so this runs only as another user (the sandbox's case; the
// engine test TestWorkspaceUnreadableOnEngine covers it in a container).
func TestDiskUsageUnreadableDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any directory")
	}
	root := t.TempDir()
	write(t, filepath.Join(root, "d/secret"), 1<<20)
	require.NoError(t, os.Chmod(filepath.Join(root, "d"), 0))
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(root, "d"), 0o700) })
	_, err := DiskUsage(root, time.Now().Add(time.Minute))
	require.ErrorContains(t, err, `open directory "d": permission denied`)
}

func TestAgentMeasures(t *testing.T) {
	root := t.TempDir()
	// du runs only while no agent does: the in-process agent's reaper
	// (wait4 on any child, as PID 1 must) would take du's exit status.
	want := duBytes(t, root)
	call, stop := startAgent(t)

	// Alone, and after a command that writes (the figure is taken after it).
	resp := call(agentproto.Request{Kind: agentproto.KindUsage, ID: 1, Path: root})
	require.Equal(t, agentproto.KindSize, resp.Kind)
	require.Equal(t, want, resp.Usage)
	resp = call(agentproto.Request{Kind: agentproto.KindExec, ID: 2, Exec: &agentproto.Exec{
		Argv: []string{"/bin/sh", "-c", "head -c 1048576 /dev/zero > " + root + "/f"}, Timeout: 10 * time.Second, OutputCap: 100, Measure: root}})
	require.Equal(t, agentproto.KindResult, resp.Kind)
	require.Empty(t, resp.Result.UsageErr)
	after := resp.Result.Usage
	require.GreaterOrEqual(t, after, want+1<<20)

	// Not asked: -1. A failed measurement: -1 and why.
	resp = call(agentproto.Request{Kind: agentproto.KindExec, ID: 3, Exec: &agentproto.Exec{Argv: []string{"true"}, Timeout: time.Second, OutputCap: 1}})
	require.Equal(t, int64(-1), resp.Result.Usage)
	require.Empty(t, resp.Result.UsageErr)
	resp = call(agentproto.Request{Kind: agentproto.KindExec, ID: 4, Exec: &agentproto.Exec{Argv: []string{"true"}, Timeout: time.Second, OutputCap: 1, Measure: root + "/missing"}})
	require.Equal(t, int64(-1), resp.Result.Usage)
	require.Contains(t, resp.Result.UsageErr, "no such file")
	resp = call(agentproto.Request{Kind: agentproto.KindUsage, ID: 5, Path: root + "/missing"})
	require.Equal(t, agentproto.KindError, resp.Kind)
	require.Contains(t, resp.Message, "no such file")
	stop()
	require.Equal(t, duBytes(t, root), after)
}
