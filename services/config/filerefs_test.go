package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/errs"
)

func TestFileReferences(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "secret-files")
	state := filepath.Join(base, "state")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{root, filepath.Join(root, "sub"), state, outside} {
		require.NoError(t, os.MkdirAll(d, 0o700))
	}
	write := func(p, s string) { require.NoError(t, os.WriteFile(p, []byte(s), 0o600)) }
	write(filepath.Join(root, "openai.key"), "sk-in-root\n")
	write(filepath.Join(root, "sub", "k"), "nested")
	write(filepath.Join(outside, "passwd"), "root:x:0:0")
	write(filepath.Join(state, "gateway.token"), "service-token")
	write(filepath.Join(root, "big"), strings.Repeat("a", MaxValueBytes+1))
	require.NoError(t, os.Symlink(filepath.Join(outside, "passwd"), filepath.Join(root, "link-out")))
	require.NoError(t, os.Symlink(outside, filepath.Join(root, "dir-out")))
	require.NoError(t, os.Symlink("openai.key", filepath.Join(root, "link-in")))

	tests := []struct {
		name, ref string
		want      string // resolved value, when err is ""
		err       string
	}{
		{"name beneath the root", "${file:openai.key}", "sk-in-root", ""},
		{"absolute beneath the root", "${file:" + root + "/openai.key}", "sk-in-root", ""},
		{"subdir", "${file:sub/k}", "nested", ""},
		{"symlink staying inside", "${file:link-in}", "sk-in-root", ""},
		{"dot-dot relative", "${file:../outside/passwd}", "", "leaves the file root"},
		{"dot-dot absolute", "${file:" + root + "/../outside/passwd}", "", "is outside the file roots"},
		{"absolute outside", "${file:/etc/passwd}", "", "is outside the file roots"},
		{"the state dir", "${file:" + state + "/gateway.token}", "", "is outside the file roots"},
		{"symlink to a file outside", "${file:link-out}", "", "cannot open beneath"},
		{"symlink to a dir outside", "${file:dir-out/passwd}", "", "cannot open beneath"},
		{"missing", "${file:nope}", "", "no such file beneath " + root},
		{"a directory", "${file:sub}", "", "not a regular file"},
		{"over 1 MiB", "${file:big}", "", "the limit is 1 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveString(tt.ref, ResolveOptions{StateDir: state, FileRoots: []string{root}})
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				require.NotContains(t, err.Error(), "root:x", "never the content")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestCheckFileRoots(t *testing.T) {
	base := t.TempDir()
	state := filepath.Join(base, "state")
	pki := filepath.Join(base, "pki")
	ok := filepath.Join(base, "secret-files")
	for _, d := range []string{state, pki, ok} {
		require.NoError(t, os.MkdirAll(d, 0o700))
	}
	link := filepath.Join(base, "innocent")
	require.NoError(t, os.Symlink(state, link))
	protected := []string{state, pki}
	tests := []struct {
		name  string
		roots []string
		err   string
	}{
		{"dedicated dir", []string{ok}, ""},
		{"the default", DefaultFileRoots, ""},
		{"the state dir", []string{state}, "overlaps " + state},
		{"inside the state dir", []string{state + "/secrets"}, "overlaps " + state},
		{"contains pki", []string{base}, "overlaps " + state},
		{"slash", []string{"/"}, `"/" would expose every file`},
		{"relative", []string{"secret-files"}, "not an absolute path"},
		{"unclean", []string{ok + "/../state"}, "is not clean"},
		{"symlink to the state dir", []string{link}, "overlaps " + state},
		{"compose pki", []string{"/pki/files"}, "overlaps /pki"},
		{"compose state", []string{"/state"}, "overlaps /state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckFileRoots(tt.roots, append(append([]string{}, ProtectedDirs...), protected...))
			if tt.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.err)
			require.ErrorContains(t, err, "secrets.fileRoots", "names the key")
			require.ErrorContains(t, err, tt.roots[0], "names the roots")
			require.ErrorIs(t, err, errs.ErrInvalidArgument)
		})
	}
}

// Validate refuses roots that overlap the stack's PKI/state mounts and any
// absolute reference outside the roots, so `config set` fails before a read.
func TestValidateFileRefs(t *testing.T) {
	tests := []struct {
		name, in, path, msg string
	}{
		{"root in the state volume", `{secrets: {fileRoots: ["/state/files"]}}`, "secrets.fileRoots", `"/state/files" overlaps /state`},
		{"root containing pki", `{secrets: {fileRoots: ["/"]}}`, "secrets.fileRoots", "would expose every file"},
		{"reference outside the default root", `{models: {providers: {x: {baseUrl: "https://evil", apiKey: "${file:/pki/gateway.token}"}}}}`,
			"models.providers.x.apiKey", `file reference ${file:/pki/gateway.token} is outside the file roots "/secret-files"`},
		{"reference outside a configured root", `{secrets: {fileRoots: ["/srv/keys"]}, gateway: {remote: {token: "${file:/secret-files/a}"}}}`,
			"gateway.remote.token", `outside the file roots "/srv/keys"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("m.json", []byte(tt.in))
			require.NoError(t, err)
			var found bool
			for _, p := range Errors(c.Validate()) {
				if p.Path == tt.path && strings.Contains(p.Message, tt.msg) {
					found = true
				}
			}
			require.True(t, found, "%v", c.Validate())
		})
	}
	c, err := Parse("m.json", []byte(`{models: {providers: {x: {apiKey: "${file:/secret-files/openai.key}"}}}, gateway: {remote: {token: "${file:name}"}}}`))
	require.NoError(t, err)
	for _, p := range Errors(c.Validate()) {
		require.NotContains(t, p.Message, "file reference", "references beneath the default root pass")
	}
}
