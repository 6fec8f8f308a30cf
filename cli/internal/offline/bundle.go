package offline

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/moltbot/moltbot-secure/services/errs"
)

// StackDown returns an error when dir is a CLI bundle and not a state dir:
// under compose the host's state dir holds only pki/ (the CLI's certificate
// and token) and the config lives in the stack's volume. Judging that dir
// would report a config the stack never reads ("no gateway token"), so the
// offline commands say the stack is down instead. nil means dir may be
// judged (a real state dir, or one that does not exist yet).
func StackDown(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read state dir %s: %w", dir, err)
	}
	pki := false
	for _, e := range ents {
		switch {
		case e.Name() == "pki" && e.IsDir():
			pki = true
		case e.Name() == ".DS_Store":
		default:
			return nil // anything else: a state dir of its own
		}
	}
	if !pki {
		return nil
	}
	return fmt.Errorf("the stack is down: make up (the config lives in the stack; %s holds only the CLI bundle, pki/, so there is nothing here to judge; give --file to check a file of your own): %w", dir, errs.ErrUnavailable)
}
