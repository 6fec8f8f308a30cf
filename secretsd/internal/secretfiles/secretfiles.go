// Package secretfiles is secretsd's writer for the secret-files volume: the
// files that ${file:NAME} config references read. The gateway mounts the
// volume read-only, so secretsd (the secrets holder) is the only writer.
// Files are 0640 in a setgid directory whose group the gateway shares, so
// the gateway can read them and nobody else can.
package secretfiles

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/moltbot/moltbot-secure/services/atomicfile"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Mode of every file written: owner rw, the shared group r, others nothing.
const Mode = 0o640

// MaxSize bounds one file: the same limit as one config value, which is
// what a reference becomes.
const MaxSize = config.MaxValueBytes

// A name is one plain path element. A leading dot is refused: it would be
// hidden from a listing, and the atomic writer's temp files start with one.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)

// Info describes one file; never its content.
type Info struct {
	Name     string
	Size     int64
	Modified time.Time
}

// Reference is how a config value refers to the file.
func (i Info) Reference() string { return "${file:" + i.Name + "}" }

// Store writes and lists files in one directory.
type Store struct {
	dir string
}

// New returns a store for dir; "" gives a store that refuses every call
// with the fix (secretsd started without the volume).
func New(dir string) *Store { return &Store{dir: dir} }

// Dir is the directory written.
func (s *Store) Dir() string { return s.dir }

// CheckName refuses a name that is not one plain file name.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("name %q: use 1-128 characters from A-Z a-z 0-9 . _ -, not starting with a dot, and no slashes (e.g. openai.key): %w",
			name, errs.ErrInvalidArgument)
	}
	return nil
}

func (s *Store) ready() (*os.Root, error) {
	if s.dir == "" {
		return nil, fmt.Errorf("secretsd has no secret-files directory (set MOLTBOT_SECRET_FILES_DIR, compose mounts the secret-files volume at /secret-files): %w",
			errs.ErrFailedPrecondition)
	}
	r, err := os.OpenRoot(s.dir)
	if err != nil {
		return nil, fmt.Errorf("secret-files directory %s: %w (the init service creates it; re-run `make up`): %w", s.dir, errors.Unwrap(err), errs.ErrFailedPrecondition)
	}
	return r, nil
}

// Put writes name atomically with Mode; replaced reports an existing file
// of that name. A symlink or directory at name is refused, never followed.
func (s *Store) Put(name string, content []byte) (Info, bool, error) {
	if err := CheckName(name); err != nil {
		return Info{}, false, err
	}
	if len(content) > MaxSize {
		return Info{}, false, fmt.Errorf("%s: %d bytes; the limit is 1 MiB: %w", name, len(content), errs.ErrInvalidArgument)
	}
	r, err := s.ready()
	if err != nil {
		return Info{}, false, err
	}
	defer r.Close()
	replaced := false
	switch st, err := r.Lstat(name); {
	case err == nil && !st.Mode().IsRegular():
		return Info{}, false, fmt.Errorf("%s exists in %s and is not a regular file; remove it first: %w", name, s.dir, errs.ErrFailedPrecondition)
	case err == nil:
		replaced = true
	case !errors.Is(err, fs.ErrNotExist):
		return Info{}, false, fmt.Errorf("%s: %w", name, errors.Unwrap(err))
	}
	// name is one checked path element, so the join stays in dir.
	if err := atomicfile.WriteFile(filepath.Join(s.dir, name), content, Mode); err != nil {
		return Info{}, false, fmt.Errorf("write secret file %s: %w", name, err)
	}
	st, err := r.Lstat(name)
	if err != nil {
		return Info{}, false, fmt.Errorf("%s: %w", name, errors.Unwrap(err))
	}
	return Info{Name: name, Size: st.Size(), Modified: st.ModTime()}, replaced, nil
}

// List returns the regular files, sorted by name; temp files, dotfiles,
// directories and symlinks are left out.
func (s *Store) List() ([]Info, error) {
	r, err := s.ready()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	f, err := r.Open(".")
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s.dir, err)
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s.dir, err)
	}
	var out []Info
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		st, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, Info{Name: e.Name(), Size: st.Size(), Modified: st.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
