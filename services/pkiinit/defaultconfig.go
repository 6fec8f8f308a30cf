package pkiinit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/moltbot/moltbot-secure/services/atomicfile"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/tlsutil"
)

// DefaultConfig writes config.DefaultFile at path (mode 0600, owned by ow)
// when no file is there, and reports whether it did. It never replaces an
// existing file, not even one created while it runs: the whole file is
// written to a temp file first and then hard-linked into place, which
// fails if the name exists (a rename would overwrite).
func DefaultConfig(path string, ow *tlsutil.Owner) (bool, error) {
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("default config %s: %w", path, err)
	}
	b, err := config.DefaultFile()
	if err != nil {
		return false, fmt.Errorf("default config: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".default")
	if err != nil {
		return false, fmt.Errorf("default config %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // the link (if any) keeps the file
	werr := tmp.Chmod(0o600)
	if werr == nil {
		_, werr = tmp.Write(b)
	}
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = chownPlain(tmp.Name(), ow)
	}
	if werr != nil {
		return false, fmt.Errorf("default config %s: %w", path, werr)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("default config %s: %w", path, err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return true, err
	}
	return true, nil
}
