// Package migrate is `moltbot security migrate` and `moltbot rollback`: the
// planner and applier used by the gateway's Migrate RPC and by the CLI. It
// turns an upstream state dir into one this build accepts:
//
//	sealed backup -> encrypt every plain secret (config + auth profiles) ->
//	fix permissions -> rewrite removed options -> report what it cannot fix ->
//	validate -> atomic write
//
// A backup of plain-text secrets would undo encryption at rest, so each backup
// is the whole original file sealed under the secrets key (through the
// Encrypter, i.e. secretsd) and Rollback opens it. Every write is atomic
// (services/atomicfile), every ciphertext is produced before the first write,
// and a second run finds nothing to do and writes nothing.
package migrate

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
	"time"

	"github.com/moltbot/moltbot-secure/services/atomicfile"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/envelope"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/statedir"
)

// Encrypter seals a value bound to aad (secretsd's Encrypt RPC, or a keyring
// in process) and returns the envelope's JSON text.
type Encrypter interface {
	Encrypt(ctx context.Context, plaintext []byte, aad string) (string, error)
}

// Decrypter opens envelope JSON text sealed for aad.
type Decrypter interface {
	Decrypt(ctx context.Context, envelope string, aad string) ([]byte, error)
}

// BackupSuffix is appended to a file's name for its newest sealed backup;
// timestamped copies add "." and the time.
const BackupSuffix = ".backup"

// BackupAAD binds a sealed backup to the file it backs up (relative to the
// state dir), e.g. "backup:moltbot.json".
func BackupAAD(rel string) string { return "backup:" + filepath.ToSlash(rel) }

// Options configure Run.
type Options struct {
	StateDir string
	// ConfigPath defaults to <StateDir>/moltbot.json.
	ConfigPath string
	// Encrypter is required unless DryRun.
	Encrypter Encrypter
	// Decrypter, when set, opens an encrypted gateway token so a weak one
	// is reported on every run until it is fixed (after the first run the
	// token is sealed and config validation alone cannot see it).
	Decrypter Decrypter
	// DryRun plans and reports; it writes nothing and encrypts nothing.
	DryRun bool
	// Now stamps backup copies; nil means time.Now.
	Now func() time.Time
}

// Report is what Run did (or, with DryRun, would do).
type Report struct {
	// Actions are human-readable steps, in order.
	Actions []string
	// Unfixed are the problems migrate leaves for the operator (each with its fix).
	Unfixed []config.Problem
	// Changed is false when there was nothing to do.
	Changed bool
	DryRun  bool
	// Written lists files written (backups included), absolute paths.
	Written []string
}

// fileJob is one file migrate may rewrite.
type fileJob struct {
	rel, path string
	orig      []byte
	tree      map[string]any
	encrypt   []config.SecretRef
	actions   []string // content changes besides encryption
	mode      fs.FileMode
}

func (j *fileJob) changed() bool { return len(j.encrypt) > 0 || len(j.actions) > 0 }

// Run plans and, unless DryRun, applies the migration.
func Run(ctx context.Context, o Options) (Report, error) {
	if o.StateDir == "" {
		return Report{}, fmt.Errorf("migrate: state dir is empty: %w", errs.ErrInvalidArgument)
	}
	if o.ConfigPath == "" {
		o.ConfigPath = filepath.Join(o.StateDir, config.FileName)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if !o.DryRun && o.Encrypter == nil {
		return Report{}, errors.New("migrate: no Encrypter")
	}
	rep := Report{DryRun: o.DryRun}

	// Plan: read and parse everything first, so bad input writes nothing.
	var jobs []*fileJob
	cfgJob, err := planConfig(o, &rep)
	if err != nil {
		return Report{}, err
	}
	if cfgJob != nil {
		jobs = append(jobs, cfgJob)
	}
	profJobs, err := planProfiles(o.StateDir)
	if err != nil {
		return Report{}, err
	}
	jobs = append(jobs, profJobs...)

	if cfgJob != nil && o.Decrypter != nil {
		rep.Unfixed = append(rep.Unfixed, sealedTokenProblems(ctx, o.Decrypter, cfgJob)...)
	}
	// An operator's own plain <file>.backup would be overwritten by the
	// sealed backup and is itself a plain copy of the secrets: seal it under
	// a new name (planned now, done before any other write).
	var operatorBaks []string
	for _, j := range jobs {
		act, err := PreserveOperatorBackup(ctx, nil, o.StateDir, j.path, o.Now(), true)
		if err != nil {
			return Report{}, fmt.Errorf("migrate: %w", err)
		}
		if act != "" {
			operatorBaks = append(operatorBaks, j.path)
			rep.Actions = append(rep.Actions, act)
		}
	}
	for _, j := range jobs {
		rep.Actions = append(rep.Actions, j.actions...)
		for _, s := range j.encrypt {
			rep.Actions = append(rep.Actions, fmt.Sprintf("%s: encrypt %s", j.rel, s.Path))
		}
	}
	var changedJobs []*fileJob
	for _, j := range jobs {
		if j.changed() {
			changedJobs = append(changedJobs, j)
		}
	}
	if len(changedJobs) > 0 {
		var names []string
		for _, j := range changedJobs {
			names = append(names, j.rel)
		}
		rep.Actions = append([]string{fmt.Sprintf("back up %s sealed under the secrets key (%s%s; `moltbot rollback` restores it)",
			strings.Join(names, ", "), names[0], BackupSuffix)}, rep.Actions...)
		if cfgJob != nil && cfgJob.changed() {
			rep.Actions = append(rep.Actions, fmt.Sprintf("%s: rewrite as JSON (comments are not kept; the sealed backup has the original)", cfgJob.rel))
		}
	}
	permActions, permFix := planPerms(o, jobs)
	rep.Actions = append(rep.Actions, permActions...)
	rep.Changed = len(changedJobs) > 0 || len(permActions) > 0 || len(operatorBaks) > 0
	if o.DryRun || !rep.Changed {
		return rep, nil
	}

	// Encrypt everything before writing anything: if secretsd fails, no file
	// has been touched.
	type sealedFile struct {
		job    *fileJob
		data   []byte
		backup []byte
	}
	var out []sealedFile
	for _, j := range changedJobs {
		for _, s := range j.encrypt {
			text, err := o.Encrypter.Encrypt(ctx, []byte(s.Value.(string)), s.AAD)
			if err != nil {
				return Report{}, fmt.Errorf("migrate: encrypt %s in %s: %w", s.Path, j.rel, err)
			}
			v, err := config.EnvelopeValue(text)
			if err != nil {
				return Report{}, fmt.Errorf("migrate: encrypter returned a bad envelope for %s: %w", s.Path, err)
			}
			if err := config.SetIn(j.tree, s.Keys, v); err != nil {
				return Report{}, fmt.Errorf("migrate: %s: %w", j.rel, err)
			}
		}
		data, err := config.MarshalTree(j.tree)
		if err != nil {
			return Report{}, fmt.Errorf("migrate: %s: %w", j.rel, err)
		}
		backup, err := sealBackupBy(ctx, o.Encrypter, j.rel, j.orig, o.Now(), WriterMigrate)
		if err != nil {
			return Report{}, err
		}
		out = append(out, sealedFile{job: j, data: data, backup: backup})
	}
	// Every ciphertext exists; now the first write: an operator's own
	// plain backup moves to its sealed name before ours takes its name.
	for _, p := range operatorBaks {
		act, err := PreserveOperatorBackup(ctx, o.Encrypter, o.StateDir, p, o.Now(), false)
		if err != nil {
			return rep, fmt.Errorf("migrate: %w", err)
		}
		for i, a := range rep.Actions { // the plan's wording becomes what was done
			if strings.HasPrefix(a, relTo(o.StateDir, p+BackupSuffix)+": your own") {
				rep.Actions[i] = act
			}
		}
	}
	stamp := o.Now().UTC().Format(stampLayout)
	for _, f := range out {
		bak := f.job.path + BackupSuffix
		// <file>.backup.migration is the state before this (the last)
		// migration: `moltbot rollback --backup migration`.
		for _, p := range []string{bak + "." + stamp, bak + "." + MigrationName, bak} {
			if err := atomicfile.WriteFile(p, f.backup, 0o600); err != nil {
				return rep, fmt.Errorf("migrate: write sealed backup: %w", err)
			}
			rep.Written = append(rep.Written, p)
		}
		if _, err := PruneBackups(f.job.path); err != nil {
			return rep, fmt.Errorf("migrate: %w", err)
		}
	}
	// Auth profiles first, config last: a crash in between leaves a config
	// that a rerun completes (each file is whole either way).
	sort.SliceStable(out, func(a, b int) bool { return out[a].job != cfgJob && out[b].job == cfgJob })
	for _, f := range out {
		if err := atomicfile.WriteFile(f.job.path, f.data, 0o600); err != nil {
			return rep, fmt.Errorf("migrate: %w", err)
		}
		rep.Written = append(rep.Written, f.job.path)
	}
	if err := permFix(); err != nil {
		return rep, err
	}
	return rep, nil
}

func planConfig(o Options, rep *Report) (*fileJob, error) {
	orig, err := os.ReadFile(o.ConfigPath)
	if errors.Is(err, fs.ErrNotExist) {
		rep.Actions = append(rep.Actions, fmt.Sprintf("no config at %s: nothing to migrate there", o.ConfigPath))
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: read config: %w", err)
	}
	c, err := config.Parse(o.ConfigPath, orig)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	rel := relTo(o.StateDir, o.ConfigPath)
	j := &fileJob{rel: rel, path: o.ConfigPath, orig: orig, tree: c.Raw}
	j.actions = rewriteRemoved(c)

	// Validate what will be written (before encryption, so a weak plain token
	// is still visible); what remains is for the operator.
	if err := c.Resolve(config.ResolveOptions{StateDir: o.StateDir}); err != nil {
		c.Resolved = nil // unresolvable references are checked when the gateway loads
	}
	rep.Unfixed = c.Validate()
	for _, s := range config.SecretPaths(c.Raw) {
		if s.State == config.StatePlain {
			j.encrypt = append(j.encrypt, s)
		}
	}
	return j, nil
}

// rewriteRemoved applies the seed's removals to the raw tree and describes them.
func rewriteRemoved(c *config.Config) []string {
	var acts []string
	tree := c.Raw
	if cui, ok := getMap(tree, "gateway", "controlUi"); ok {
		for _, f := range []string{"allowInsecureAuth", "dangerouslyDisableDeviceAuth"} {
			if v, ok := cui[f]; ok {
				delete(cui, f)
				acts = append(acts, fmt.Sprintf("%s: remove gateway.controlUi.%s (was %v; removed option)", c.File, f, v))
			}
		}
	}
	chans, _ := getMap(tree, "channels")
	var blocks []struct {
		path string
		m    map[string]any
	}
	for _, name := range sortedKeys(chans) {
		ch, ok := chans[name].(map[string]any)
		if !ok {
			continue
		}
		blocks = append(blocks, struct {
			path string
			m    map[string]any
		}{"channels." + name, ch})
		accts, _ := ch["accounts"].(map[string]any)
		for _, id := range sortedKeys(accts) {
			if a, ok := accts[id].(map[string]any); ok {
				blocks = append(blocks, struct {
					path string
					m    map[string]any
				}{"channels." + name + ".accounts." + id, a})
			}
		}
	}
	name := filepath.Base(c.File)
	for _, b := range blocks {
		if dm, ok := b.m["dm"].(map[string]any); ok {
			if dm["policy"] == "open" {
				dm["policy"] = "pairing"
				acts = append(acts, fmt.Sprintf("%s: %s.dm.policy \"open\" -> \"pairing\" (approve senders with `moltbot pairing approve`)", name, b.path))
			}
			acts = append(acts, dropWildcard(dm, "allowFrom", name, b.path+".dm.allowFrom")...)
		}
		if b.m["dmPolicy"] == "open" {
			b.m["dmPolicy"] = "pairing"
			acts = append(acts, fmt.Sprintf("%s: %s.dmPolicy \"open\" -> \"pairing\" (approve senders with `moltbot pairing approve`)", name, b.path))
		}
		acts = append(acts, dropWildcard(b.m, "allowFrom", name, b.path+".allowFrom")...)
	}
	for i := range acts {
		acts[i] = strings.Replace(acts[i], c.File+": ", name+": ", 1)
	}
	return acts
}

// dropWildcard removes "*" (anyone) from an allowFrom list; an emptied list
// is removed.
func dropWildcard(m map[string]any, key, file, path string) []string {
	list, ok := m[key].([]any)
	if !ok {
		return nil
	}
	kept := list[:0:0]
	for _, e := range list {
		if e != "*" {
			kept = append(kept, e)
		}
	}
	if len(kept) == len(list) {
		return nil
	}
	if len(kept) == 0 {
		delete(m, key)
	} else {
		m[key] = kept
	}
	return []string{fmt.Sprintf("%s: %s: drop \"*\" (anyone); pairing approvals fill the allowlist", file, path)}
}

func planProfiles(stateDir string) ([]*fileJob, error) {
	matches, err := filepath.Glob(filepath.Join(stateDir, "agents", "*", "agent", "auth-profiles.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(matches)
	var jobs []*fileJob
	for _, p := range matches {
		agentID := filepath.Base(filepath.Dir(filepath.Dir(p)))
		orig, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("migrate: read %s: %w", p, err)
		}
		c, err := config.Parse(p, orig)
		if err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
		j := &fileJob{rel: relTo(stateDir, p), path: p, orig: orig, tree: c.Raw}
		for _, s := range config.AuthProfileSecrets(agentID, c.Raw) {
			if s.State == config.StatePlain {
				j.encrypt = append(j.encrypt, s)
			}
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// planPerms lists the mode fixes (dirs 0700, files 0600) for the state dir
// and the files migrate owns, and returns a func applying them.
func planPerms(o Options, jobs []*fileJob) ([]string, func() error) {
	type fix struct {
		path string
		mode fs.FileMode
	}
	var fixes []fix
	var acts []string
	check := func(p string, want fs.FileMode) {
		st, err := os.Lstat(p)
		if err != nil || st.Mode()&fs.ModeSymlink != 0 {
			return
		}
		if st.Mode().Perm() != want {
			fixes = append(fixes, fix{p, want})
			acts = append(acts, fmt.Sprintf("chmod %04o %s (was %04o)", want, relTo(o.StateDir, p), st.Mode().Perm()))
		}
	}
	check(o.StateDir, 0o700)
	seen := map[string]bool{}
	for _, j := range jobs {
		check(j.path, 0o600)
		for d := filepath.Dir(j.path); strings.HasPrefix(d, o.StateDir) && d != o.StateDir && !seen[d]; d = filepath.Dir(d) {
			seen[d] = true
			check(d, 0o700)
		}
	}
	// credentials/ holds upstream pairing requests and allowlists (and
	// channel session files): the same rule, symlinks never followed.
	creds := filepath.Join(o.StateDir, "credentials")
	if fi, err := os.Lstat(creds); err == nil && fi.IsDir() {
		_ = filepath.WalkDir(creds, func(p string, d fs.DirEntry, err error) error {
			switch {
			case err != nil || d.Type()&fs.ModeSymlink != 0:
				return nil
			case d.IsDir():
				check(p, 0o700)
			case d.Type().IsRegular():
				check(p, 0o600)
			}
			return nil
		})
	}
	return acts, func() error {
		var errsOut []error
		for _, f := range fixes {
			if _, _, err := statedir.Tighten(f.path, f.mode); err != nil {
				errsOut = append(errsOut, fmt.Errorf("fix permissions: %w", err))
			}
		}
		return errors.Join(errsOut...)
	}
}

// backupFile is the on-disk form of a sealed backup.
type backupFile struct {
	Format  string `json:"$backup"`
	File    string `json:"file"`
	Created string `json:"created"`
	// Writer is what wrote it (WriterMigrate, ...), for `rollback --list`.
	Writer string         `json:"writer,omitempty"`
	Sealed map[string]any `json:"sealed"`
}

const backupFormat = "v1"

func sealBackupBy(ctx context.Context, enc Encrypter, rel string, orig []byte, now time.Time, writer string) ([]byte, error) {
	text, err := enc.Encrypt(ctx, orig, BackupAAD(rel))
	if err != nil {
		return nil, fmt.Errorf("migrate: seal backup of %s: %w", rel, err)
	}
	env, err := config.EnvelopeValue(text)
	if err != nil {
		return nil, fmt.Errorf("migrate: seal backup of %s: %w", rel, err)
	}
	b, err := json.MarshalIndent(backupFile{Format: backupFormat, File: filepath.ToSlash(rel), Created: now.UTC().Format(time.RFC3339Nano), Writer: writer, Sealed: env}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// OpenBackup decrypts a sealed backup file's content.
func OpenBackup(ctx context.Context, d Decrypter, path string, data []byte) (rel string, orig []byte, err error) {
	bf, err := parseBackup(path, data)
	if err != nil {
		return "", nil, err
	}
	env, err := envelope.FromMap(bf.Sealed)
	if err != nil {
		return "", nil, fmt.Errorf("backup %s: %w", path, err)
	}
	text, err := env.Encode()
	if err != nil {
		return "", nil, err
	}
	orig, err = d.Decrypt(ctx, text, BackupAAD(bf.File))
	if err != nil {
		return "", nil, fmt.Errorf("backup %s: %w", path, err)
	}
	return bf.File, orig, nil
}

// RollbackOptions configure Rollback.
type RollbackOptions struct {
	StateDir   string
	ConfigPath string // default <StateDir>/moltbot.json
	Decrypter  Decrypter
	// Migration restores the state before the last migration
	// (<file>.backup.migration) instead of the newest backups.
	Migration bool
	// Check sees every opened backup before any file is written; an error
	// stops the rollback with nothing written (e.g. plain-text secrets
	// without the operator's yes).
	Check func(rel string, orig []byte) error
}

// Rollback opens the newest sealed backups (config and auth profiles), or
// with Migration the migration backups, and restores the original bytes
// atomically. It returns the files restored.
func Rollback(ctx context.Context, o RollbackOptions) ([]string, error) {
	if o.ConfigPath == "" {
		o.ConfigPath = filepath.Join(o.StateDir, config.FileName)
	}
	if o.Decrypter == nil {
		return nil, errors.New("rollback: no Decrypter")
	}
	suffix := BackupSuffix
	if o.Migration {
		suffix += "." + MigrationName
	}
	profiles, err := filepath.Glob(filepath.Join(o.StateDir, "agents", "*", "agent", "auth-profiles.json"+suffix))
	if err != nil {
		return nil, err
	}
	sort.Strings(profiles)
	backups := append([]string{o.ConfigPath + suffix}, profiles...)
	type restore struct {
		path string
		data []byte
	}
	var todo []restore
	// Open every backup before writing any file.
	for i, b := range backups {
		data, err := os.ReadFile(b)
		if errors.Is(err, fs.ErrNotExist) && i == 0 {
			if len(profiles) == 0 {
				return nil, fmt.Errorf("rollback: no backup at %s (run `moltbot security migrate` first): %w", b, errs.ErrNotFound)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("rollback: %w", err)
		}
		rel, orig, err := OpenBackup(ctx, o.Decrypter, b, data)
		if err != nil {
			return nil, fmt.Errorf("rollback: %w", err)
		}
		target := strings.TrimSuffix(b, suffix)
		if want := relTo(o.StateDir, target); rel != filepath.ToSlash(want) {
			return nil, fmt.Errorf("rollback: backup %s is of %s, not %s: %w", b, rel, want, errs.ErrInvalidArgument)
		}
		if o.Check != nil {
			if err := o.Check(rel, orig); err != nil {
				return nil, fmt.Errorf("rollback: %w", err)
			}
		}
		todo = append(todo, restore{target, orig})
	}
	var done []string
	for _, r := range todo {
		if err := atomicfile.WriteFile(r.path, r.data, 0o600); err != nil {
			return done, fmt.Errorf("rollback: %w", err)
		}
		done = append(done, r.path)
	}
	return done, nil
}

// PlainSecrets lists the secret fields held in plain text by a config or
// auth-profiles file's bytes (rel says which, as in a backup's header), so
// a restore can say so. Unparsable bytes list nothing.
func PlainSecrets(rel string, data []byte) []string {
	c, err := config.Parse(rel, data)
	if err != nil {
		return nil
	}
	var refs []config.SecretRef
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) == 4 && parts[0] == "agents" && parts[2] == "agent" && parts[3] == "auth-profiles.json" {
		refs = config.AuthProfileSecrets(parts[1], c.Raw)
	} else {
		refs = config.SecretPaths(c.Raw)
	}
	var out []string
	for _, r := range refs {
		if r.State == config.StatePlain {
			out = append(out, r.Path)
		}
	}
	return out
}

func relTo(base, p string) string {
	r, err := filepath.Rel(base, p)
	if err != nil || strings.HasPrefix(r, "..") {
		return p
	}
	return r
}

func getMap(tree map[string]any, keys ...string) (map[string]any, bool) {
	cur := tree
	for _, k := range keys {
		next, ok := cur[k].(map[string]any)
		if !ok {
			return nil, false
		}
		cur = next
	}
	return cur, true
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sealedTokenProblems opens an encrypted gateway token and reports it when
// it breaks the token rule (auth.CheckToken), so the weak token found on
// the first run keeps being reported after it was sealed.
func sealedTokenProblems(ctx context.Context, d Decrypter, j *fileJob) []config.Problem {
	for _, s := range config.SecretPaths(j.tree) {
		if s.Path != "gateway.auth.token" || s.State != config.StateEnvelope {
			continue
		}
		text, ok := s.EnvelopeText()
		if !ok {
			return nil
		}
		pt, err := d.Decrypt(ctx, text, s.AAD)
		if err != nil {
			return []config.Problem{{File: j.rel, Path: s.Path, Severity: config.SevError,
				Message: "will not decrypt: " + err.Error(), Fix: "moltbot config set " + s.Path + " -"}}
		}
		if auth.CheckToken(string(pt)) != nil {
			return []config.Problem{{File: j.rel, Path: s.Path, Severity: config.SevError,
				Message: fmt.Sprintf("weak token (encrypted): the rule is at least %d characters with at least %d distinct", auth.MinTokenLength, auth.MinTokenDistinct),
				Fix:     auth.TokenFix}}
		}
	}
	return nil
}
