package doctor

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
	"github.com/moltbot/moltbot-secure/services/pkiinit"
)

func statusOf(checks []Check, name string) []string {
	var out []string
	for _, c := range checks {
		if c.Name == name {
			out = append(out, c.Status)
		}
	}
	return out
}

// Real files on disk: a state dir with wide modes and no certificates is
// reported, --fix repairs it, and a second run is clean.
func TestDoctorFindsAndFixes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "credentials"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "moltbot.json"), []byte(`{"channels":{"telegram":{"dm":{"policy":"open"}}}}`), 0o644))
	f := &cmdutil.Factory{StateDirFlag: dir, GatewayAddr: "127.0.0.1:1", Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}
	defer f.Close()

	checks := Run(dir, false, f)
	require.Contains(t, statusOf(checks, "permissions"), "fail")
	require.Equal(t, []string{"fail"}, statusOf(checks, "config"), "dm.policy open is invalid")
	require.Equal(t, []string{"fail"}, statusOf(checks, "certificates"))

	checks = Run(dir, true, f)
	require.NotContains(t, statusOf(checks, "permissions"), "fail")
	require.Contains(t, statusOf(checks, "permissions"), "fixed")
	require.Equal(t, []string{"fixed"}, statusOf(checks, "certificates"))
	fi, err := os.Stat(filepath.Join(dir, "moltbot.json"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	checks = Run(dir, false, f)
	require.Equal(t, []string{"ok"}, statusOf(checks, "permissions"), "%+v", checks)
	for _, s := range statusOf(checks, "certificates") {
		require.Equal(t, "ok", s)
	}
	require.Equal(t, []string{"fail"}, statusOf(checks, "config"), "doctor never rewrites config semantics: that is migrate's job")
}

func TestDoctorExitCode(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	f := &cmdutil.Factory{StateDirFlag: dir, GatewayAddr: "127.0.0.1:1", Out: &out, Err: &bytes.Buffer{}}
	err := run(f, &Options{})
	require.Equal(t, cmdutil.ExitDegraded, cmdutil.ExitCode(err), out.String())
}

// A CLI bundle dir (pki/ only, as `make up` exports) with the stack down:
// the bundle is not judged as a state dir (no config or key findings), and
// the one failure says the stack is not running and to run make up.
func TestDoctorBundleStackDown(t *testing.T) {
	full := filepath.Join(t.TempDir(), "pki")
	_, err := pkiinit.Init(pkiinit.Options{PKIDir: full})
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "bundle")
	require.NoError(t, pkiinit.Export(full, dir, nil))
	var out bytes.Buffer
	f := &cmdutil.Factory{StateDirFlag: dir, GatewayAddr: "127.0.0.1:1", Out: &out, Err: &bytes.Buffer{}}
	defer f.Close()
	checks := Run(dir, false, f)
	require.Empty(t, statusOf(checks, "config"), "%+v", checks)
	require.Empty(t, statusOf(checks, "secrets key"), "%+v", checks)
	require.Equal(t, []string{"fail"}, statusOf(checks, "services"))
	for _, c := range checks {
		if c.Name == "services" {
			require.Contains(t, c.Detail, "the stack is not running")
			require.Equal(t, "make up", c.Fix)
			require.NotContains(t, c.Detail, "rpc error")
			continue
		}
		require.Equal(t, "ok", c.Status, "%+v", c)
		require.Empty(t, c.Fix, "a passed check has nothing to fix")
	}
}
