package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/moltbot/moltbot-secure/services/errs"
)

// References: "${VAR}" (an environment variable; upper-case names, as
// upstream) and "${file:PATH}" (file content without the trailing newline;
// only beneath secrets.fileRoots, see filerefs.go). "$${" writes a literal "${".
var refRE = regexp.MustCompile(`\$?\$\{(?:([A-Z_][A-Z0-9_]*)|file:([^}]+))\}`)

// IsReference reports whether s contains a reference. Such a value is never
// encrypted and never replaced by its resolved value on write.
func IsReference(s string) bool {
	for _, m := range refRE.FindAllString(s, -1) {
		if !strings.HasPrefix(m, "$$") {
			return true
		}
	}
	return false
}

// ResolveOptions are the inputs of Resolve.
type ResolveOptions struct {
	// LookupEnv reads environment variables; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// StateDir is the service's state dir: never readable by a reference.
	StateDir string
	// FileRoots are where file references may point; Resolve fills it from
	// the config (secrets.fileRoots, default DefaultFileRoots) when nil.
	FileRoots []string
	// Protected adds dirs no file root may overlap (the PKI dir), to
	// ProtectedDirs and StateDir.
	Protected []string
}

// Resolve fills c.Resolved: a copy of Raw with every reference replaced.
// Raw is untouched, so a later write keeps the references. Every failure is
// reported, each naming its field, and none includes a resolved value.
func (c *Config) Resolve(o ResolveOptions) error {
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.FileRoots == nil {
		o.FileRoots = c.FileRoots()
	}
	var problems []error
	out := resolveValue(c.Raw, "", o, func(path string, err error) {
		problems = append(problems, fmt.Errorf("%s: %s: %w", c.where(path), path, err))
	})
	if len(problems) > 0 {
		return fmt.Errorf("resolve references: %w: %w", errors.Join(problems...), errs.ErrInvalidArgument)
	}
	c.Resolved = out.(map[string]any)
	return nil
}

func resolveValue(v any, path string, o ResolveOptions, report func(string, error)) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = resolveValue(e, joinPath(path, k), o, report)
		}
		return m
	case []any:
		a := make([]any, len(t))
		for i, e := range t {
			a[i] = resolveValue(e, joinPath(path, strconv.Itoa(i)), o, report)
		}
		return a
	case string:
		if !strings.Contains(t, "${") {
			return t
		}
		s, err := ResolveString(t, o)
		if err != nil {
			report(path, err)
			return t
		}
		return s
	}
	return v
}

// ResolveString resolves the references in one string.
func ResolveString(s string, o ResolveOptions) (string, error) {
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.FileRoots == nil {
		o.FileRoots = DefaultFileRoots
	}
	var firstErr error
	out := refRE.ReplaceAllStringFunc(s, func(m string) string {
		if strings.HasPrefix(m, "$$") {
			return m[1:]
		}
		sub := refRE.FindStringSubmatch(m)
		if name := sub[1]; name != "" {
			val, ok := o.LookupEnv(name)
			if !ok {
				if firstErr == nil {
					firstErr = fmt.Errorf("environment variable %s is not set (referenced as ${%s}); set it or replace the reference", name, name)
				}
				return m
			}
			return val
		}
		b, err := readFileRef(strings.TrimSpace(sub[2]), o)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return m
		}
		return strings.TrimRight(b, "\r\n")
	})
	return out, firstErr
}
