package configstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/moltbot/moltbot-secure/services/atomicfile"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/envelope"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/migrate"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

// Redacted values shown by Get without reveal.
const (
	ShownEncrypted = "<encrypted>"
	ShownPlain     = "<plaintext secret: run `moltbot security migrate` to encrypt it>"
)

// Get returns the JSON of the value at path ("" = the whole config), read
// from the file on disk. Secrets show as ShownEncrypted unless reveal, when
// they are decrypted through secretsd (the caller checks who may reveal).
// References are shown as written.
func (s *Store) Get(ctx context.Context, path string, reveal bool) (string, error) {
	c, err := s.read()
	if err != nil {
		return "", err
	}
	tree := config.Clone(c.Raw)
	for _, ref := range config.SecretPaths(c.Raw) {
		var shown any
		switch ref.State {
		case config.StateReference, config.StateEmpty:
			continue
		case config.StateEnvelope:
			shown = ShownEncrypted
			if reveal {
				v, err := s.secretValue(ctx, c, ref)
				if err != nil {
					return "", err
				}
				shown = v
			}
		case config.StatePlain:
			shown = ShownPlain
			if reveal {
				shown = ref.Value
			}
		default:
			shown = ShownEncrypted + " (malformed)"
		}
		if err := config.SetIn(tree, ref.Keys, shown); err != nil {
			return "", err
		}
	}
	var v any = tree
	if path != "" {
		sub := config.New(s.cfg.Path, tree)
		if v, err = sub.Get(path); err != nil {
			if errors.Is(err, errs.ErrNotFound) {
				return "", fmt.Errorf("%s: %s is not set: %w", s.cfg.Path, path, errs.ErrNotFound)
			}
			return "", err
		}
	}
	// No HTML escaping: "<encrypted>" must reach the CLI as written, not
	// as "\u003cencrypted\u003e".
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("encode %s: %w", path, err)
	}
	b := strings.TrimSuffix(buf.String(), "\n")
	if reveal {
		target := path
		if target == "" {
			target = "(whole config)"
		}
		// A reveal is shown only once it is on record.
		if err := seclog.Put(s.cfg.Log, seclog.Decision(ctx, "config.reveal", target, nil)); err != nil {
			return "", fmt.Errorf("--reveal is refused while the security log cannot record it: %w: %w", err, errs.ErrUnavailable)
		}
	}
	return b, nil
}

// SetResult is what Set did.
type SetResult struct {
	Encrypted bool
	// EncryptedPaths are the secret fields this write sealed: the one set
	// and every other plaintext secret in the file (encrypt on every write).
	EncryptedPaths []string
	BackupPath     string
	Warnings       []config.Problem
}

// Set changes one path: validate -> encrypt every plain secret at or below
// path through secretsd (AAD = the field path) -> sealed backup of the old
// file -> atomic write 0600 -> reload. A reference (${VAR}, ${file:...})
// stays a reference. valueIsString keeps value a string; otherwise it is
// converted to the field's type. On any error the file is unchanged.
func (s *Store) Set(ctx context.Context, path, value string, valueIsString, unset bool) (SetResult, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	orig, err := os.ReadFile(s.cfg.Path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return SetResult{}, fmt.Errorf("read config %s: %w", s.cfg.Path, err)
	}
	c, err := s.read()
	if err != nil {
		return SetResult{}, err
	}
	secret := config.IsSecretPath(path)
	switch {
	case unset:
		err = c.Unset(path)
	case valueIsString || secret:
		err = c.Set(path, value)
	default:
		err = c.SetString(path, value)
	}
	if err != nil {
		return SetResult{}, fmt.Errorf("%s: %w", s.cfg.Path, err)
	}
	// Validate before encrypting, so a weak plain token is still visible.
	if err := c.Resolve(s.resolveOpts()); err != nil {
		return SetResult{}, fmt.Errorf("%s: %w", s.cfg.Path, err)
	}
	problems := c.Validate()
	if bad := config.Errors(problems); len(bad) > 0 {
		return SetResult{}, fmt.Errorf("the config would be invalid, nothing written:\n  %s: %w", joinProblems(bad), errs.ErrInvalidArgument)
	}
	// The rest of the file must still load: every other envelope decrypts
	// for its field. Setting the broken field itself is the fix, so it is
	// not checked. Every other plaintext secret is sealed too: any write
	// leaves no plaintext secret behind (config.SecretPaths is the one
	// classifier).
	var refs []config.SecretRef
	for _, r := range config.SecretPaths(c.Raw) {
		if r.Path == path || strings.HasPrefix(r.Path, path+".") || r.State == config.StatePlain {
			refs = append(refs, r)
			continue
		}
		if r.State == config.StateEnvelope {
			if _, err := s.secretValue(ctx, c, r); err != nil {
				return SetResult{}, fmt.Errorf("nothing written: %w", err)
			}
		}
	}
	sealed, err := config.SealSecrets(c.Raw, refs, func(pt []byte, aad string) (string, error) {
		return s.cfg.Secrets.Encrypt(ctx, pt, aad)
	})
	if err != nil {
		return SetResult{}, err
	}
	data, err := c.Marshal()
	if err != nil {
		return SetResult{}, err
	}
	res := SetResult{Encrypted: len(sealed) > 0, EncryptedPaths: sealed}
	for _, p := range problems {
		if p.Severity != config.SevError {
			res.Warnings = append(res.Warnings, p)
		}
	}
	if orig != nil {
		if res.BackupPath, err = migrate.WriteSealedBackup(ctx, s.encrypter(), s.cfg.StateDir, s.cfg.Path, orig, s.cfg.Now()); err != nil {
			return SetResult{}, diskErr(s.cfg.Path+".backup", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(s.cfg.Path), 0o700); err != nil {
		return SetResult{}, err
	}
	if err := atomicfile.WriteFile(s.cfg.Path, data, 0o600); err != nil {
		return SetResult{}, diskErr(s.cfg.Path, err)
	}
	kind := "config.set"
	if unset {
		kind = "config.unset"
	}
	s.record(ctx, kind, path, map[string]string{"encrypted": fmt.Sprint(res.Encrypted)})
	if _, err := s.Load(ctx); err != nil {
		// The write succeeded and was validated; a reload failure (e.g.
		// secretsd gone) leaves the previous snapshot serving.
		s.log.Warn("config written but not reloaded", "error", err.Error())
	}
	return res, nil
}

// Validate checks config text (JSON5), or the file on disk when text is
// empty, including that every envelope decrypts for its field.
func (s *Store) Validate(ctx context.Context, text string) ([]config.Problem, error) {
	var c *config.Config
	var err error
	if text != "" {
		c, err = config.Parse("<request>", []byte(text))
	} else {
		c, err = s.read()
	}
	if err != nil {
		var pe *config.ParseError
		if errors.As(err, &pe) {
			return []config.Problem{{File: pe.File, Line: pe.Line, Message: pe.Msg, Severity: config.SevError, Fix: "fix the syntax (the file must be a JSON5 object)"}}, nil
		}
		var le *config.LimitError
		if errors.As(err, &le) {
			return []config.Problem{{File: le.Where, Line: le.Line, Message: le.Msg, Severity: config.SevError, Fix: le.Fix}}, nil
		}
		return nil, err
	}
	var out []config.Problem
	if err := c.Resolve(s.resolveOpts()); err != nil {
		out = append(out, config.Problem{File: c.File, Message: err.Error(), Severity: config.SevError, Fix: "set the variable or fix the file reference"})
	}
	out = append(out, c.Validate()...)
	return append(out, s.decryptedProblems(ctx, c)...), nil
}

// CheckDecrypted runs the config model's checks that need decrypted values
// (config.DecryptedChecks: a weak encrypted token, ...) on the file on disk.
// The security audit calls it, so it reports what `config validate` does,
// with the same ids and text.
func (s *Store) CheckDecrypted(ctx context.Context) ([]config.Problem, error) {
	c, err := s.read()
	if err != nil {
		return nil, err
	}
	return s.decryptedProblems(ctx, c), nil
}

// decryptedProblems opens every envelope of c through secretsd and runs
// the checks that need the values; an envelope that does not open is a
// problem itself.
func (s *Store) decryptedProblems(ctx context.Context, c *config.Config) []config.Problem {
	var out []config.Problem
	plain := map[string]string{}
	for _, ref := range config.SecretPaths(c.Raw) {
		if ref.State != config.StateEnvelope && ref.State != config.StateBadEnvelope {
			continue
		}
		v, err := s.secretValue(ctx, c, ref)
		if err != nil {
			out = append(out, config.Problem{File: c.File, Line: c.Line(ref.Path), Path: ref.Path, Message: err.Error(), Severity: config.SevError,
				Fix: "moltbot config set " + ref.Path + " -"})
			continue
		}
		plain[ref.Path] = v
	}
	return append(out, config.DecryptedChecks(c, plain)...)
}

// MigrateResult is what Migrate did.
type MigrateResult struct {
	migrate.Report
	BackupPath string
}

// Migrate runs services/migrate on the state dir with secretsd as the
// encrypter, then imports the upstream pairing files into pairingd.
func (s *Store) Migrate(ctx context.Context, dryRun bool) (MigrateResult, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	rep, err := migrate.Run(ctx, migrate.Options{StateDir: s.cfg.StateDir, ConfigPath: s.cfg.Path, Encrypter: s.encrypter(), Decrypter: s.decrypter(), DryRun: dryRun, Now: s.cfg.Now})
	if err != nil {
		return MigrateResult{}, err
	}
	res := MigrateResult{Report: rep}
	for _, w := range rep.Written {
		if w == s.cfg.Path+migrate.BackupSuffix {
			res.BackupPath = w
		}
	}
	acts, changed, err := s.importPairingFrom(ctx, filepath.Join(s.cfg.StateDir, "credentials"), dryRun)
	if err != nil {
		return res, err
	}
	res.Actions = append(res.Actions, acts...)
	res.Changed = res.Changed || changed
	if !dryRun && res.Changed {
		s.record(ctx, "config.migrate", s.cfg.Path, map[string]string{"backup": res.BackupPath})
		if _, err := s.Load(ctx); err != nil {
			s.log.Warn("migrated config not reloaded; restart the gateway", "error", err.Error())
		}
	}
	return res, nil
}

// importPairing feeds credentials/<channel>-pairing.json and
// <channel>-allowFrom.json to pairingd, which merges (a rerun skips what
// it already has).
func (s *Store) importPairingFrom(ctx context.Context, dir string, dryRun bool) ([]string, bool, error) {
	chans := map[string]bool{}
	for _, suf := range []string{"-pairing.json", "-allowFrom.json"} {
		m, _ := filepath.Glob(filepath.Join(dir, "*"+suf))
		for _, p := range m {
			chans[strings.TrimSuffix(filepath.Base(p), suf)] = true
		}
	}
	names := make([]string, 0, len(chans))
	for ch := range chans {
		names = append(names, ch)
	}
	sort.Strings(names)
	var acts []string
	changed := false
	for _, ch := range names {
		pj, _ := os.ReadFile(filepath.Join(dir, ch+"-pairing.json"))
		aj, _ := os.ReadFile(filepath.Join(dir, ch+"-allowFrom.json"))
		if dryRun || s.cfg.Pairing == nil {
			why := "import"
			if s.cfg.Pairing == nil {
				why = "skip (pairingd not connected):"
			}
			acts = append(acts, fmt.Sprintf("credentials/%s-*.json: %s pairing requests and allowlist into pairingd", ch, why))
			continue
		}
		pend, allowed, skipped, err := s.cfg.Pairing.Import(ctx, ch, pj, aj)
		if err != nil {
			return acts, changed, fmt.Errorf("import credentials/%s pairing files: %w", ch, err)
		}
		if pend+allowed > 0 {
			changed = true
			acts = append(acts, fmt.Sprintf("credentials/%s-*.json: imported %d pending request(s) and %d allowed sender(s) into pairingd (%d skipped)", ch, pend, allowed, skipped))
		}
	}
	return acts, changed, nil
}

// RotateKey adds a new primary key in secretsd; with rewrap it re-seals
// every envelope in the config, the auth profiles and the sealed backups
// under it (inside secretsd), each file written atomically.
func (s *Store) RotateKey(ctx context.Context, rewrap bool) (kid string, rewrapped int, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	kid, err = s.cfg.Secrets.Rotate(ctx)
	if err != nil {
		return "", 0, fmt.Errorf("rotate: %w", err)
	}
	// The rotation is done in secretsd whatever the rewrap below does.
	s.record(ctx, "key.rotate", kid, map[string]string{"rewrap": fmt.Sprint(rewrap)})
	if !rewrap {
		return kid, 0, nil
	}
	type write struct {
		path string
		data []byte
	}
	var writes []write
	// Re-seal everything first, write after: a failure writes nothing.
	rewrapTree := func(path string, tree map[string]any, refs []config.SecretRef) error {
		n := 0
		for _, r := range refs {
			text, ok := r.EnvelopeText()
			if !ok {
				continue
			}
			out, changed, err := s.cfg.Secrets.Rewrap(ctx, text, r.AAD)
			if err != nil {
				return fmt.Errorf("rewrap %s in %s: %w", r.Path, path, err)
			}
			if !changed {
				continue
			}
			v, err := config.EnvelopeValue(out)
			if err != nil {
				return err
			}
			if err := config.SetIn(tree, r.Keys, v); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return nil
		}
		b, err := config.MarshalTree(tree)
		if err != nil {
			return err
		}
		rewrapped += n
		writes = append(writes, write{path, b})
		return nil
	}
	if c, err := config.Load(s.cfg.Path); err == nil {
		if err := rewrapTree(s.cfg.Path, c.Raw, config.SecretPaths(c.Raw)); err != nil {
			return kid, 0, err
		}
	} else if !errors.Is(err, errs.ErrNotFound) {
		return kid, 0, err
	}
	ids, files, err := s.authProfileFiles()
	if err != nil {
		return kid, 0, err
	}
	for _, p := range files {
		c, err := config.Load(p)
		if err != nil {
			return kid, 0, err
		}
		if err := rewrapTree(p, c.Raw, config.AuthProfileSecrets(ids[p], c.Raw)); err != nil {
			return kid, 0, err
		}
	}
	backups, err := migrate.BackupFiles(s.cfg.StateDir, s.cfg.Path)
	if err != nil {
		return kid, 0, err
	}
	for _, p := range backups {
		data, err := os.ReadFile(p)
		if err != nil {
			return kid, 0, err
		}
		out, changed, err := migrate.RewrapBackup(ctx, s.cfg.Secrets, p, data)
		if err != nil {
			return kid, 0, err
		}
		if changed {
			rewrapped++
			writes = append(writes, write{p, out})
		}
	}
	for _, w := range writes {
		if err := atomicfile.WriteFile(w.path, w.data, 0o600); err != nil {
			return kid, rewrapped, err
		}
	}
	for _, f := range s.cfg.Sealed {
		changed, err := f.Rewrap(ctx, s.cfg.Secrets.Rewrap)
		if err != nil {
			return kid, rewrapped, err
		}
		if changed {
			rewrapped++
		}
	}
	s.record(ctx, "key.rewrap", kid, map[string]string{"rewrapped": fmt.Sprint(rewrapped)})
	if _, err := s.Load(ctx); err != nil {
		s.log.Warn("config not reloaded after rewrap", "error", err.Error())
	}
	return kid, rewrapped, nil
}

type encrypter struct{ s Secrets }

func (e encrypter) Encrypt(ctx context.Context, pt []byte, aad string) (string, error) {
	return e.s.Encrypt(ctx, pt, aad)
}

type decrypter struct{ s Secrets }

func (d decrypter) Decrypt(ctx context.Context, env, aad string) ([]byte, error) {
	return d.s.Decrypt(ctx, env, aad)
}

func (s *Store) encrypter() migrate.Encrypter { return encrypter{s.cfg.Secrets} }
func (s *Store) decrypter() migrate.Decrypter { return decrypter{s.cfg.Secrets} }

func envelopeFromMap(m map[string]any) (envelope.Envelope, error) { return envelope.FromMap(m) }

// diskErr tells the caller a write failed for lack of space (the atomic
// write left the previous file intact) instead of a bare internal error.
func diskErr(path string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("write %s: no space left on device; the previous config is intact, free space and retry: %w", path, errs.ErrResourceExhausted)
	}
	return err
}
