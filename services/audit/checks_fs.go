package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// fsClass is what a state-dir path holds, for its wanted modes and ids.
type fsClass struct {
	name      string // id segment: fs.<name>.*
	dir, file fs.FileMode
	// sensitive: readable by others is critical (keys, tokens, config).
	sensitive bool
}

// classOf maps a state-dir relative path to its class. configRel is the
// config file's path relative to the state dir.
func classOf(rel, configRel string, isDir bool) fsClass {
	c := fsClass{name: "state_dir", dir: 0o700, file: 0o600}
	first, _, _ := strings.Cut(rel, "/")
	base := path.Base(rel)
	switch {
	case rel == ".":
	case rel == configRel || strings.HasPrefix(rel, configRel+".") || strings.HasPrefix(rel, configRel+"~"):
		c.name, c.sensitive = "config", true
	case first == "keys":
		c.name, c.sensitive = "keys_dir", true
	case first == "credentials":
		c.name, c.sensitive = "credentials_dir", true
	case first == "tokens":
		c.name, c.sensitive = "tokens_dir", true
	case first == "pki":
		// Certificates are public and compose services of other uids read
		// through the directory and a shared group; keys stay private.
		c.name, c.sensitive, c.dir, c.file = "pki_dir", true, 0o755, 0o640
		if !isDir && isPublicPKI(base) {
			c.file = 0o644
		}
	case base == "auth-profiles.json" || strings.HasPrefix(base, "auth-profiles.json."):
		c.name, c.sensitive = "auth_profiles", true
	case first == "sessions" || strings.Contains(rel, "/sessions/") || strings.HasSuffix(rel, "/sessions"):
		c.name = "sessions_store"
	case first == "logs" || strings.HasSuffix(base, ".log") || strings.HasSuffix(base, ".jsonl"):
		c.name = "log_file"
	}
	return c
}

func isPublicPKI(base string) bool {
	if strings.Contains(strings.ToLower(base), "key") {
		return false
	}
	return strings.HasSuffix(base, ".crt") || strings.HasSuffix(base, ".pem") || strings.HasSuffix(base, ".json")
}

// isCopy reports a backup or stray copy of a file (editor and manual
// backups included): those keep plaintext secrets after migrate.
func isCopy(rel string) bool {
	b := strings.ToLower(path.Base(rel))
	for _, s := range []string{".bak", ".backup", ".orig", ".old", ".save", "~"} {
		if strings.HasSuffix(b, s) || strings.Contains(b, s+".") {
			return true
		}
	}
	return false
}

func (a *auditor) configRel() string {
	root := a.in.Snapshot.Root
	if root != "" && filepath.IsAbs(a.in.ConfigPath) {
		if r, err := filepath.Rel(root, a.in.ConfigPath); err == nil && !strings.HasPrefix(r, "..") {
			return filepath.ToSlash(r)
		}
	}
	if !filepath.IsAbs(a.in.ConfigPath) && !strings.Contains(a.in.ConfigPath, "..") {
		return filepath.ToSlash(filepath.Clean(a.in.ConfigPath))
	}
	return "moltbot.json"
}

func (a *auditor) abs(rel string) string {
	if a.in.Snapshot.Root == "" {
		return rel
	}
	return filepath.Join(a.in.Snapshot.Root, filepath.FromSlash(rel))
}

// checkFiles covers permissions, owners, symlinks, unreadable entries,
// cloud-synced state dirs and plaintext secrets in file contents.
func (a *auditor) checkFiles() {
	snap := a.in.Snapshot
	if snap.Root == "" && len(snap.Entries) == 0 {
		return
	}
	if svc := syncedService(snap.Root); svc != "" {
		a.add(Finding{
			ID: "fs.synced_dir", Severity: Warn,
			Title:  "The state dir is inside a cloud-synced folder",
			Detail: fmt.Sprintf("%s is under %s: keys, tokens and transcripts are copied to the provider and its other devices", snap.Root, svc),
			Remedy: "move it out (e.g. ~/.moltbot) and set MOLTBOT_STATE_DIR, then `moltbot doctor --fix`",
		})
	}
	if snap.Truncated {
		a.add(Finding{
			ID: "fs.snapshot_truncated", Severity: Info,
			Title:  "The state dir has too many entries: only the first were checked",
			Detail: fmt.Sprintf("stopped after %d entries", len(snap.Entries)),
			Remedy: "prune old sessions and sandbox workspaces",
		})
	}
	cfgRel := a.configRel()
	for _, e := range snap.Entries {
		rel := e.Rel
		if rel == "" {
			rel = "."
		}
		if e.Err != "" {
			a.add(Finding{
				ID: "fs.unreadable", Severity: Warn,
				Title:  "Some state-dir entries could not be read",
				Detail: rel + ": " + e.Err,
				Remedy: "check ownership and modes: moltbot doctor --fix   (or ls -l " + a.abs(rel) + ")",
			})
		}
		if e.Mode&fs.ModeSymlink != 0 || e.Symlink != "" {
			if e.Escapes {
				a.add(Finding{
					ID: "fs.symlink_escape", Severity: Warn,
					Title:  "Symlinks lead out of the state dir",
					Detail: fmt.Sprintf("%s -> %s", rel, e.Symlink),
					Remedy: "replace the symlink with the real file or directory inside the state dir (doctor never follows symlinks)",
				})
			}
			continue
		}
		a.checkOwner(e, rel)
		if e.Err == "" || e.Mode != 0 {
			a.checkMode(e, rel, cfgRel)
		}
		a.scanContent(e, rel, cfgRel)
	}
}

func (a *auditor) checkOwner(e Entry, rel string) {
	if a.in.ProcessUID < 0 || e.Err != "" && e.Mode == 0 || e.UID == a.in.ProcessUID || slices.Contains(a.in.TrustedUIDs, e.UID) {
		return
	}
	// Sandbox containers write workspaces as their own user by design.
	if first, _, _ := strings.Cut(rel, "/"); first == "sandbox" || strings.Contains(rel, "/workspace") {
		return
	}
	a.add(Finding{
		ID: "fs.owner_mismatch", Severity: Warn,
		Title:  "State-dir files are owned by another user",
		Detail: fmt.Sprintf("%s is owned by uid %d (expected %d)", rel, e.UID, a.in.ProcessUID),
		Remedy: fmt.Sprintf("sudo chown -R %d %s   (after checking why)", a.in.ProcessUID, a.abs(".")),
	})
}

// checkMode reports the worst way an entry is wider than its class allows;
// one finding per entry, so a 0777 file is not counted four times.
func (a *auditor) checkMode(e Entry, rel, cfgRel string) {
	isDir := e.IsDir || e.Mode.IsDir()
	c := classOf(rel, cfgRel, isDir)
	want := c.file
	if isDir {
		want = c.dir
	}
	have := e.Mode.Perm()
	extra := have &^ want
	if extra == 0 {
		return
	}
	var kind string
	sev := Warn
	switch {
	case extra&0o002 != 0:
		kind, sev = "perms_world_writable", Critical
	case extra&0o020 != 0:
		kind = "perms_group_writable"
		if c.sensitive || rel == "." {
			sev = Critical
		}
	case extra&0o004 != 0:
		kind = "perms_world_readable"
		if c.sensitive {
			sev = Critical
		}
	case extra&0o040 != 0:
		kind = "perms_group_readable"
	default:
		kind, sev = "perms_wide", Info
	}
	newMode := have & want
	id := "fs." + c.name + "." + kind
	a.add(Finding{
		ID: id, Severity: sev,
		Title:   fmt.Sprintf("%s permissions are too wide (%s)", classTitle(c.name), strings.ReplaceAll(strings.TrimPrefix(kind, "perms_"), "_", " ")),
		Detail:  fmt.Sprintf("%s is %04o, wanted at most %04o", display(rel), have, want),
		Remedy:  fmt.Sprintf("moltbot doctor --fix   (or chmod %04o %s)", newMode, a.abs(rel)),
		Fixable: true,
		fixes: []FixAction{{ID: id, Kind: KindChmod, Path: rel, Mode: newMode,
			Description: fmt.Sprintf("chmod %04o %s (was %04o)", newMode, rel, have)}},
	})
}

// display names a state-dir entry; "." reads badly alone.
func display(rel string) string {
	if rel == "." {
		return "the state dir"
	}
	return rel
}

func classTitle(name string) string {
	switch name {
	case "state_dir":
		return "State dir"
	case "config":
		return "Config file"
	case "keys_dir":
		return "Secrets key"
	case "credentials_dir":
		return "Credentials"
	case "tokens_dir":
		return "Service tokens"
	case "pki_dir":
		return "PKI files"
	case "auth_profiles":
		return "Auth profiles"
	case "sessions_store":
		return "Session transcripts"
	case "log_file":
		return "Log files"
	}
	return name
}

// syncedService names the sync client whose folder holds dir, or "".
func syncedService(dir string) string {
	d := filepath.ToSlash(dir) + "/"
	for _, s := range []struct{ marker, name string }{
		{"/Dropbox/", "Dropbox"}, {"/Dropbox (", "Dropbox"},
		{"/Library/Mobile Documents/", "iCloud Drive"}, {"/iCloud Drive/", "iCloud Drive"}, {"/iCloudDrive/", "iCloud Drive"},
		{"/OneDrive/", "OneDrive"}, {"/OneDrive - ", "OneDrive"},
		{"/Google Drive/", "Google Drive"}, {"/GoogleDrive/", "Google Drive"}, {"/My Drive/", "Google Drive"},
		{"/Library/CloudStorage/", "a cloud storage provider"},
	} {
		if strings.Contains(d, s.marker) {
			return s.name
		}
	}
	return ""
}

// secretKeyNames are keys whose string values are secrets in files with no
// schema (credentials, stray copies): matched case-insensitively.
var secretKeyNames = []string{"token", "bottoken", "apptoken", "apikey", "api_key", "signingsecret", "password",
	"secret", "clientsecret", "client_secret", "key", "access", "refresh", "accesstoken", "refreshtoken", "privatekey"}

// secretTextRE finds `"token": "value"` shapes in text that is not JSON
// (JSON5, or a truncated file). Values that are references are skipped by
// the caller.
var secretTextRE = regexp.MustCompile(`(?i)["']?\b(token|botToken|appToken|apiKey|api_key|signingSecret|password|secret|clientSecret|key|access|refresh)["']?\s*:\s*["']([^"'\n]{8,})["']`)

// scanContent looks for plaintext secrets in the bytes SnapshotDir kept.
func (a *auditor) scanContent(e Entry, rel, cfgRel string) {
	if len(e.Content) == 0 {
		return
	}
	base := path.Base(rel)
	switch {
	case isCopy(rel):
		if n := a.scanFile(e.Content, true); n > 0 {
			a.addPlaintext(fmt.Sprintf("%s (a backup or stray copy) holds %d plaintext secret(s)", rel, n), true)
		}
	case rel == cfgRel:
		// The parsed tree is audited by checkConfigSecrets; scan the text
		// only when it could not be parsed.
		if a.in.Config == nil {
			if n := a.scanFile(e.Content, true); n > 0 {
				a.addPlaintext(fmt.Sprintf("%s holds %d plaintext secret(s)", rel, n), false)
			}
		}
	case base == "auth-profiles.json":
		if n := a.scanProfiles(e.Content); n > 0 {
			a.addPlaintext(fmt.Sprintf("%s holds %d plaintext secret(s)", rel, n), false)
		}
	case strings.HasPrefix(rel, "credentials/"):
		if n := a.scanFile(e.Content, false); n > 0 {
			a.addPlaintext(fmt.Sprintf("%s holds %d plaintext secret(s)", rel, n), false)
		}
	}
}

// scanFile counts plaintext secrets in a JSON (or JSON-like) file. config
// adds the config's secret paths to the generic key names.
func (a *auditor) scanFile(b []byte, config bool) int {
	var tree any
	if err := json.Unmarshal(b, &tree); err != nil {
		return countTextSecrets(string(b))
	}
	if m, ok := tree.(map[string]any); ok && classify(m, true) == sEnvelope {
		return 0 // a sealed backup
	}
	n := 0
	walkTree(tree, nil, 0, func(keys []string, v any) bool {
		if _, isStr := v.(string); !isStr {
			if classify(v, true) == sEnvelope {
				a.sawEnvelope = true
				return false
			}
			return true
		}
		last := keys[len(keys)-1]
		secret := slices.Contains(secretKeyNames, strings.ToLower(last)) ||
			(config && a.in.IsSecretPath(strings.Join(keys, ".")))
		if secret && classify(v, true) == sPlain {
			n++
		}
		return false
	})
	return n
}

func countTextSecrets(s string) int {
	n := 0
	for _, m := range secretTextRE.FindAllStringSubmatch(s, -1) {
		v := m[2]
		if isReference(v) || strings.Contains(v, "$enc") {
			continue
		}
		n++
	}
	return n
}

// scanProfiles counts plaintext secrets in auth-profiles.json:
// {"profiles":{"<name>":{"key"|"apiKey"|"token"|"access"|"refresh": ...}}}.
func (a *auditor) scanProfiles(b []byte) int {
	var tree map[string]any
	if err := json.Unmarshal(b, &tree); err != nil {
		return countTextSecrets(string(b))
	}
	profiles, _ := tree["profiles"].(map[string]any)
	n := 0
	for _, name := range sortedKeys(profiles) {
		p, _ := profiles[name].(map[string]any)
		for _, f := range []string{"key", "apiKey", "token", "access", "refresh"} {
			v, ok := p[f]
			switch classify(v, ok) {
			case sPlain:
				n++
			case sEnvelope:
				a.sawEnvelope = true
			}
		}
	}
	return n
}

// keyFile is the secrets key file, relative to the state dir.
const keyFile = "keys/secrets.key"

func (a *auditor) checkKeys() {
	var present bool
	switch {
	case a.in.KeyStatus != nil:
		present = len(a.in.KeyStatus.IDs) > 0 || a.in.KeyStatus.Primary != ""
	case a.in.Snapshot.Root != "":
		for _, e := range a.in.Snapshot.Entries {
			if e.Rel == keyFile && !e.IsDir && e.Symlink == "" && e.Mode&fs.ModeSymlink == 0 {
				present = true
			}
		}
	default:
		return // nobody looked
	}
	if !present {
		f := Finding{
			ID: "secrets.key_missing", Severity: Warn,
			Title:  "No secrets key: secrets cannot be encrypted at rest",
			Detail: keyFile + " does not exist and secretsd reports no key",
			Remedy: "moltbot security migrate   (creates the key, encrypts the secrets; back the key up)",
		}
		if a.sawEnvelope {
			f.Severity = Critical
			f.Title = "The secrets key is missing: encrypted secrets cannot be decrypted"
			f.Remedy = "restore " + keyFile + " from your backup (a new key cannot open the existing envelopes)"
		}
		a.add(f)
		return
	}
	ks := a.in.KeyStatus
	if ks == nil || ks.CreatedAt.IsZero() || a.in.Now.IsZero() {
		return
	}
	age := a.in.Now.Sub(ks.CreatedAt)
	if age > time.Duration(a.in.KeyRotationDays)*24*time.Hour {
		a.add(Finding{
			ID: "secrets.key_not_rotated", Severity: Info,
			Title:  "The secrets key has not been rotated recently",
			Detail: fmt.Sprintf("primary key %s is %d days old (rotation suggested every %d days)", ks.Primary, int(age.Hours()/24), a.in.KeyRotationDays),
			Remedy: "moltbot security rotate-key --rewrap",
		})
	}
}

// CertExpiryWarning is how close to expiry a certificate is reported.
const CertExpiryWarning = 30 * 24 * time.Hour

func (a *auditor) checkCerts() {
	for _, c := range a.in.Certs {
		name := c.Name
		if name == "" {
			name = "(unnamed certificate)"
		}
		switch {
		case c.Err != nil && errors.Is(c.Err, fs.ErrNotExist):
			a.add(Finding{
				ID: "certs.missing", Severity: Warn,
				Title:  "Service certificates are missing",
				Detail: name + ": not found",
				Remedy: "moltbot certs init",
			})
		case c.Err != nil:
			a.add(Finding{
				ID: "certs.invalid", Severity: Warn,
				Title:  "Service certificates cannot be loaded",
				Detail: fmt.Sprintf("%s: %v", name, c.Err),
				Remedy: "moltbot certs rotate   (or `moltbot certs init --force`)",
			})
		case !a.in.Now.IsZero() && !c.NotAfter.After(a.in.Now):
			a.add(Finding{
				ID: "certs.expiring", Severity: Critical,
				Title:  "Service certificates have expired or expire soon",
				Detail: fmt.Sprintf("%s expired on %s", name, c.NotAfter.UTC().Format(time.DateOnly)),
				Remedy: "moltbot certs rotate",
			})
		case !a.in.Now.IsZero() && c.NotAfter.Sub(a.in.Now) < CertExpiryWarning:
			a.add(Finding{
				ID: "certs.expiring", Severity: Warn,
				Title:  "Service certificates have expired or expire soon",
				Detail: fmt.Sprintf("%s expires on %s (in %d days)", name, c.NotAfter.UTC().Format(time.DateOnly), int(c.NotAfter.Sub(a.in.Now).Hours()/24)),
				Remedy: "moltbot certs rotate",
			})
		}
	}
}

func (a *auditor) checkProbes() {
	for _, p := range a.in.Probes {
		id := p.ID
		if id == "" {
			id = "unnamed"
		}
		if !strings.HasPrefix(id, "deep.") {
			id = "deep." + id
		}
		title := p.Title
		if title == "" {
			title = "Live probe " + strings.TrimPrefix(id, "deep.")
		}
		f := Finding{ID: id, Title: title, Detail: p.Detail, Remedy: p.Remedy}
		if p.OK {
			// A passed check has nothing to fix.
			f.Severity, f.Title, f.Remedy = Info, title+": passed", ""
		} else {
			f.Severity = p.Severity
			if f.Severity.rank() > Info.rank() {
				f.Severity = Critical
			}
			f.Title = title + ": failed"
			if f.Remedy == "" {
				f.Remedy = "moltbot doctor"
			}
		}
		a.add(f)
	}
}

// summary reports the attack surface (info: it costs nothing).
func (a *auditor) summary() {
	gw := a.gateway()
	bind, _ := gw["bind"].(string)
	if bind == "" {
		bind = "loopback"
	}
	auth := "token"
	if au, ok := gw["auth"].(map[string]any); ok {
		if m, ok := au["mode"].(string); ok && m != "" {
			auth = m
		}
	}
	if a.noAuth {
		auth = "none"
	}
	// The gateway serves the Control UI unless gateway.controlUi.enabled is false.
	cui := "enabled (loopback, device approval)"
	if c, ok := gw["controlUi"].(map[string]any); ok {
		switch {
		case c["enabled"] == false:
			cui = "disabled"
		case c["dangerouslyDisableDeviceAuth"] == true:
			cui = "enabled WITHOUT device approval"
		}
	}
	sb := "agents.defaults.sandbox=non-main"
	if len(a.sandboxModes) > 0 {
		sb = strings.Join(a.sandboxModes, ", ")
	}
	s := a.surface
	a.add(Finding{
		ID: "summary.attack_surface", Severity: Info,
		Title: "Attack surface summary",
		Detail: fmt.Sprintf("gateway bind %s, auth %s, control UI %s; channels %d (%d disabled blocks), open DM %d, open groups %d, wildcard allowlists %d; sandbox %s",
			bind, auth, cui, s.channels, s.disabled, s.openDM, s.openGroups, s.wildcards, sb),
	})
}
