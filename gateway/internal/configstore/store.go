// Package configstore is the gateway's ownership of moltbot.json: load
// (JSON5), resolve references, decrypt the secrets through secretsd and fail
// closed, hold the current config for the other capabilities, and the
// writes behind GetConfig/SetConfig/Migrate/Rollback/RotateKey. It never
// imports grpc status or codes: errors carry services/errs classes.
package configstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/seclog"
)

// Secrets is what the store needs from secretsd (secretsv1 client adapted
// by SecretsClient); the plaintext never leaves the gateway.
type Secrets interface {
	Encrypt(ctx context.Context, plaintext []byte, aad string) (string, error)
	Decrypt(ctx context.Context, envelope, aad string) ([]byte, error)
	Rewrap(ctx context.Context, envelope, aad string) (text string, changed bool, err error)
	Rotate(ctx context.Context) (kid string, err error)
	// Ping checks that secretsd answers (Status).
	Ping(ctx context.Context) error
}

// Importer imports the upstream pairing files (pairingd's Import RPC).
type Importer interface {
	Import(ctx context.Context, channel string, pairingJSON, allowFromJSON []byte) (pending, allowed, skipped int, err error)
}

// Config holds the store's dependencies.
type Config struct {
	Path     string // moltbot.json
	StateDir string
	// PKIDir, like StateDir, may never be beneath a file root.
	PKIDir  string
	Secrets Secrets
	Pairing Importer // optional: Migrate skips the pairing import without it
	Logger  hclog.Logger
	// LookupEnv resolves ${VAR} references; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// StartWait bounds how long Load waits for secretsd to answer
	// (0: 15 s); the services start together and secretsd may lag.
	StartWait time.Duration
	Now       func() time.Time
	// Log records each write, reveal, reload and key rotation this store
	// performs (nil: not recorded).
	Log seclog.Recorder
	// Sealed are envelopes in files this store does not own (the security
	// log's key): RotateKey with rewrap re-seals them too, so retiring the
	// old key afterwards leaves nothing behind.
	Sealed []SealedFile
}

// SealedFile is one such file; Rewrap re-seals its envelope through the
// given secretsd Rewrap (plaintext never leaves secretsd) and writes it
// atomically, reporting whether it changed.
type SealedFile interface {
	Rewrap(ctx context.Context, rewrap func(ctx context.Context, envelope, aad string) (string, bool, error)) (bool, error)
}

// Snapshot is one loaded config: the tree as on disk, resolved references,
// and every secret in plaintext (memory only).
type Snapshot struct {
	Config *config.Config
	View   config.View
	// plain holds each set secret by dotted path (decrypted, resolved or plain).
	plain map[string]string
	// Warnings are Validate's non-fatal problems.
	Warnings []config.Problem
}

// Secret returns the plaintext of a secret field, "" and false when unset.
func (s *Snapshot) Secret(path string) (string, bool) {
	if s == nil {
		return "", false
	}
	v, ok := s.plain[path]
	return v, ok
}

// Store holds the current config.
type Store struct {
	cfg Config
	log hclog.Logger

	wmu sync.Mutex // serialises writes to the state dir
	mu  sync.RWMutex
	cur *Snapshot
}

// New returns a store; call Load before use.
func New(cfg Config) (*Store, error) {
	if cfg.Path == "" || cfg.StateDir == "" {
		return nil, errors.New("configstore: Path and StateDir are required")
	}
	if cfg.Secrets == nil {
		return nil, errors.New("configstore: Secrets is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.LookupEnv == nil {
		cfg.LookupEnv = os.LookupEnv
	}
	if cfg.StartWait == 0 {
		cfg.StartWait = 15 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{cfg: cfg, log: cfg.Logger}, nil
}

// Path is the config file.
func (s *Store) Path() string { return s.cfg.Path }

// Current returns the config loaded last (never nil after a successful Load).
func (s *Store) Current() *Snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur
}

// WaitForSecretsd retries Ping until secretsd answers or StartWait passes,
// then fails closed with the fix.
func (s *Store) WaitForSecretsd(ctx context.Context) error {
	deadline := time.Now().Add(s.cfg.StartWait)
	var last error
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = s.cfg.Secrets.Ping(pctx)
		cancel()
		if last == nil {
			return nil
		}
		// Only "not up yet" is worth waiting for; refusals are final.
		if errors.Is(last, ErrSecretsdRefused) {
			return fmt.Errorf("the gateway does not start without secretsd: %w", last)
		}
		if !errors.Is(last, errs.ErrUnavailable) && !errors.Is(last, errs.ErrDeadlineExceeded) && !errors.Is(last, context.DeadlineExceeded) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("secretsd is unreachable (%v); the gateway does not start without it because it cannot decrypt the config's secrets: start secretsd (docker compose up -d secretsd, or check --secretsd-addr) and restart the gateway: %w",
		last, errs.ErrUnavailable)
}

// Load reads, resolves, validates and decrypts the config, and makes it
// current. A missing file is an empty config (defaults). Any error leaves
// the previous snapshot in place.
func (s *Store) Load(ctx context.Context) (*Snapshot, error) {
	snap, err := s.load(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.cur = snap
	s.mu.Unlock()
	return snap, nil
}

func (s *Store) load(ctx context.Context) (*Snapshot, error) {
	c, err := s.read()
	if err != nil {
		return nil, err
	}
	if err := c.Resolve(s.resolveOpts()); err != nil {
		return nil, fmt.Errorf("config %s: %w", s.cfg.Path, err)
	}
	problems := c.Validate()
	if bad := config.Errors(problems); len(bad) > 0 {
		return nil, fmt.Errorf("invalid config, the gateway will not start:\n  %s\n(run `moltbot config validate` for details): %w",
			joinProblems(bad), errs.ErrInvalidArgument)
	}
	snap := &Snapshot{Config: c, View: c.View(), plain: map[string]string{}}
	for _, p := range problems {
		if p.Severity != config.SevError {
			snap.Warnings = append(snap.Warnings, p)
		}
	}
	for _, ref := range config.SecretPaths(c.Raw) {
		v, err := s.secretValue(ctx, c, ref)
		if err != nil {
			return nil, err
		}
		if v != "" {
			snap.plain[ref.Path] = v
		}
	}
	return snap, nil
}

// secretValue returns a secret's plaintext; an envelope that does not
// decrypt is an error naming the field and the fix.
func (s *Store) secretValue(ctx context.Context, c *config.Config, ref config.SecretRef) (string, error) {
	where := s.where(c, ref.Path)
	switch ref.State {
	case config.StateEmpty:
		return "", nil
	case config.StatePlain:
		return ref.Value.(string), nil
	case config.StateReference:
		v, ok := config.GetIn(c.Resolved, ref.Keys)
		str, _ := v.(string)
		if !ok {
			return "", fmt.Errorf("%s: %s: reference not resolved: %w", where, ref.Path, errs.ErrInvalidArgument)
		}
		return str, nil
	case config.StateEnvelope:
		text, _ := ref.EnvelopeText()
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		pt, err := s.cfg.Secrets.Decrypt(dctx, text, ref.AAD)
		if errors.Is(err, ErrSecretsdDown) || errors.Is(err, ErrSecretsdRefused) {
			return "", fmt.Errorf("%s: %s: %w", where, ref.Path, err)
		}
		if err != nil {
			return "", fmt.Errorf("%s: %s will not decrypt: %w; if the value was copied from another field or another install, set it again with `moltbot config set %s -`",
				where, ref.Path, err, ref.Path)
		}
		return string(pt), nil
	case config.StateBadEnvelope:
		m, _ := ref.Value.(map[string]any)
		_, err := envelopeFromMap(m)
		return "", fmt.Errorf("%s: %s: %w; set it again with `moltbot config set %s -`", where, ref.Path, err, ref.Path)
	}
	return "", fmt.Errorf("%s: %s: is not a string or an encrypted envelope; set it with `moltbot config set %s -`: %w", where, ref.Path, ref.Path, errs.ErrInvalidArgument)
}

func (s *Store) where(c *config.Config, path string) string {
	if l := c.Line(path); l > 0 {
		return fmt.Sprintf("%s:%d", s.cfg.Path, l)
	}
	return s.cfg.Path
}

// read parses the file on disk; a missing file is an empty config.
func (s *Store) read() (*config.Config, error) {
	c, err := config.Load(s.cfg.Path)
	if errors.Is(err, errs.ErrNotFound) {
		return config.New(s.cfg.Path, nil), nil
	}
	return c, err
}

func (s *Store) resolveOpts() config.ResolveOptions {
	return config.ResolveOptions{LookupEnv: s.cfg.LookupEnv, StateDir: s.cfg.StateDir, Protected: []string{s.cfg.PKIDir}}
}

func joinProblems(ps []config.Problem) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, "\n  ")
}

// authProfileFiles lists agents/*/agent/auth-profiles.json with agent ids.
func (s *Store) authProfileFiles() (map[string]string, []string, error) {
	matches, err := filepath.Glob(filepath.Join(s.cfg.StateDir, "agents", "*", "agent", "auth-profiles.json"))
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(matches)
	ids := make(map[string]string, len(matches))
	for _, p := range matches {
		ids[p] = filepath.Base(filepath.Dir(filepath.Dir(p)))
	}
	return ids, matches, nil
}

// record writes a decision this store carried out to the security log. The
// change is already made, so a log failure is reported, not returned.
func (s *Store) record(ctx context.Context, kind, target string, fields map[string]string) {
	if err := seclog.Put(s.cfg.Log, seclog.Decision(ctx, kind, target, fields)); err != nil {
		s.log.Error("security log: event not recorded", "kind", kind, "error", err.Error())
	}
}
