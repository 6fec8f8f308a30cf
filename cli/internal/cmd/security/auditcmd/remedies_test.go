package auditcmd_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/cli/internal/cmd/root"
	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
)

// repoRoot is the monorepo root, from this package's directory.
const repoRoot = "../../../../.."

// remedySources hold remedy and fix texts: the audit engine, the gateway's
// fix runner, this command's offline fixes, and the packages whose errors
// and findings the audit and validate pass on (policy, config, migrate,
// the token rule).
var remedySources = []string{"services/audit", "gateway/internal/auditrun", "cli/internal/cmd/security/auditcmd", "cli/internal/offline", "cli/internal/cmdutil",
	"gateway/internal/policy", "services/config", "services/migrate", "services/auth"}

var (
	mentionRE = regexp.MustCompile("(?:^|[\\s`(:])moltbot ([^`()\\n;,|&]*)")
	wordRE    = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
)

// stringLiterals returns every string literal in the non-test Go files of
// dir, with its position.
func stringLiterals(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no Go files in %s", dir)
	fset := token.NewFileSet()
	for _, p := range files {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		require.NoError(t, err)
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil {
					out[fset.Position(lit.Pos()).String()] = s
				}
			}
			return true
		})
	}
	return out
}

// checkMention walks the words after "moltbot " down the command tree:
// each word must be a subcommand until a runnable command takes arguments,
// and each --flag must exist on the command it reached. A placeholder (a
// format verb, <id>, a path) ends the check.
func checkMention(rootCmd *cobra.Command, text string) string {
	cur, args := rootCmd, false
	for i, tok := range strings.Fields(strings.SplitN(text, "   ", 2)[0]) {
		switch {
		case strings.ContainsAny(tok, "%<>\"'"):
			return ""
		case strings.HasPrefix(tok, "--"):
			name := strings.SplitN(strings.TrimPrefix(tok, "--"), "=", 2)[0]
			if cur.Flags().Lookup(name) == nil && cur.InheritedFlags().Lookup(name) == nil {
				return "`" + cur.CommandPath() + "` has no flag --" + name
			}
		case strings.HasPrefix(tok, "-") || args:
		case wordRE.MatchString(tok):
			if sub, _, err := cur.Find([]string{tok}); err == nil && sub != cur {
				cur = sub
				continue
			}
			if i == 0 {
				return "`moltbot` has no command " + tok
			}
			if cur.HasSubCommands() { // a group: root.New answers its unknown words with a usage error
				return "`" + cur.CommandPath() + "` has no subcommand " + tok
			}
			args = true
		default:
			if cur.HasSubCommands() { // a group: root.New answers its unknown words with a usage error
				return ""
			}
			args = true
		}
	}
	return ""
}

// TestRemediesNameRealCommands: every `moltbot <words>` in a remedy or fix
// text is a command (and its flags) of the real CLI tree.
func TestRemediesNameRealCommands(t *testing.T) {
	rootCmd := root.New(cmdutil.New(), "test")
	checked := 0
	for _, dir := range remedySources {
		for pos, s := range stringLiterals(t, filepath.Join(repoRoot, dir)) {
			for _, m := range mentionRE.FindAllStringSubmatch(s, -1) {
				checked++
				if msg := checkMention(rootCmd, m[1]); msg != "" {
					rel, _ := filepath.Rel(repoRoot, pos)
					t.Errorf("%s: %q: %s", rel, strings.TrimSpace(m[0]), msg)
				}
			}
		}
	}
	require.Greater(t, checked, 20, "the scan found too few remedies to be looking at the right files")
}

// TestCheckMention shows the checker can fail.
func TestCheckMention(t *testing.T) {
	rootCmd := root.New(cmdutil.New(), "test")
	for _, tc := range []struct {
		text string
		bad  bool
	}{
		{"config set gateway.bind loopback", false},
		{"config set gateway.controlUi.allowInsecureAuth --unset", false},
		{"security audit --fix", false},
		{"config unset gateway.bind", true},
		{"security audit --repair", true},
		{"frobnicate", true},
		{"pairing approve %s <code> --owner", false},
	} {
		got := checkMention(rootCmd, tc.text)
		require.Equal(t, tc.bad, got != "", "%q: %s", tc.text, got)
	}
}
