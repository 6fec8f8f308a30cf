package configstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/envelope"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/migrate"
)

// KeyRetirer drops a non-primary key from secretsd's ring (SecretsClient
// does it with secretsd's Retire).
type KeyRetirer interface {
	Retire(ctx context.Context, kid string) error
}

// KeyUse maps each key id to the places still sealed under it: every
// envelope RotateKey's rewrap re-seals (the config, the auth profiles,
// their sealed backups and the Sealed files), by the same lists.
func (s *Store) KeyUse(ctx context.Context) (map[string][]string, int, error) {
	use := map[string][]string{}
	n := 0
	add := func(where, text string) {
		n++
		e, err := envelope.Decode(text)
		if err != nil {
			use["(unreadable)"] = append(use["(unreadable)"], where)
			return
		}
		use[e.KID] = append(use[e.KID], where)
	}
	tree := func(path string, refs []config.SecretRef) {
		for _, r := range refs {
			if text, ok := r.EnvelopeText(); ok {
				add(path+": "+r.Path, text)
			}
		}
	}
	if c, err := config.Load(s.cfg.Path); err == nil {
		tree(s.cfg.Path, config.SecretPaths(c.Raw))
	} else if !errors.Is(err, errs.ErrNotFound) {
		return nil, 0, err
	}
	ids, files, err := s.authProfileFiles()
	if err != nil {
		return nil, 0, err
	}
	for _, p := range files {
		c, err := config.Load(p)
		if err != nil {
			return nil, 0, err
		}
		tree(p, config.AuthProfileSecrets(ids[p], c.Raw))
	}
	backups, err := migrate.BackupFiles(s.cfg.StateDir, s.cfg.Path)
	if err != nil {
		return nil, 0, err
	}
	for _, p := range backups {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, 0, err
		}
		if _, _, err := migrate.RewrapBackup(ctx, kidReader{add: add, where: p}, p, data); err != nil {
			return nil, 0, err
		}
	}
	for i, f := range s.cfg.Sealed {
		where := fmt.Sprintf("sealed file %d", i)
		if st, ok := f.(fmt.Stringer); ok {
			where = st.String()
		}
		if _, err := f.Rewrap(ctx, kidReader{add: add, where: where}.Rewrap); err != nil {
			return nil, 0, err
		}
	}
	return use, n, nil
}

// kidReader is a Rewrapper that only reads: it notes each envelope's key
// id and hands the envelope back unchanged, so nothing is written. It lets
// KeyUse walk the very files RotateKey rewraps, with their own parsers.
type kidReader struct {
	add   func(where, text string)
	where string
}

func (k kidReader) Rewrap(_ context.Context, text, _ string) (string, bool, error) {
	k.add(k.where, text)
	return text, false, nil
}

// RetireKey drops kid from secretsd's ring after checking that nothing the
// gateway keeps is still sealed under it (a value sealed under a retired
// key can never be read again). The refusal names the places and the fix.
func (s *Store) RetireKey(ctx context.Context, kid string) (checked int, err error) {
	if strings.TrimSpace(kid) == "" {
		return 0, fmt.Errorf("name the key to retire (see `moltbot status --all` for key ids): %w", errs.ErrInvalidArgument)
	}
	r, ok := s.cfg.Secrets.(KeyRetirer)
	if !ok {
		return 0, fmt.Errorf("this gateway's secrets client cannot retire keys: %w", errs.ErrUnimplemented)
	}
	// Held across the check and the retire: no write seals anything
	// in between (writes seal under the primary, which Retire refuses).
	s.wmu.Lock()
	defer s.wmu.Unlock()
	use, checked, err := s.KeyUse(ctx)
	if err != nil {
		return 0, fmt.Errorf("count the envelopes under %s: %w", kid, err)
	}
	if places := use[kid]; len(places) > 0 {
		sort.Strings(places)
		shown := places
		if len(shown) > 5 {
			shown = append(shown[:5:5], fmt.Sprintf("and %d more", len(places)-5))
		}
		return checked, fmt.Errorf("key %s still seals %d value(s) (%s): run `moltbot security rotate-key --rewrap` first, then retire it: %w",
			kid, len(places), strings.Join(shown, "; "), errs.ErrFailedPrecondition)
	}
	if err := r.Retire(ctx, kid); err != nil {
		return checked, err
	}
	s.record(ctx, "key.retire", kid, map[string]string{"checked": fmt.Sprint(checked)})
	return checked, nil
}
