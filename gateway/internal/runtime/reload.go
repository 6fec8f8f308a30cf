package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/moltbot/moltbot-secure/gateway/internal/configstore"
	"github.com/moltbot/moltbot-secure/gateway/internal/policy"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/config"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Reloader is `gateway restart` (the Reload RPC and SIGHUP): re-read and
// validate the config, check the token, provision the next runtime, and
// only then make the snapshot, the runtime and the token current.
type Reloader struct {
	Store   *configstore.Store
	Manager *Manager
	// Secret resolves the secret fields of the snapshot being applied.
	Secret func(*configstore.Snapshot) SecretFunc
	// Token finds the gateway token of a snapshot and where it came from.
	Token func(*configstore.Snapshot) (tok, source string, err error)
	// Auth checks client tokens; a new token replaces the old at once.
	Auth *auth.GatewayToken
	// OnToken learns the new token and its source (status, audit).
	OnToken func(tok, source string)
	Logger  hclog.Logger

	mu sync.Mutex // one reload at a time
}

// Result is a reload's answer. Not applied: Problems say why and the
// running config, runtime and token stay.
type Result struct {
	Applied  bool
	Changes  []string
	Problems []config.Problem
}

// Reload applies the config file in place, whole or not at all.
func (r *Reloader) Reload(ctx context.Context) (Result, error) {
	if r.Store == nil || r.Manager == nil || r.Token == nil || r.Secret == nil {
		return Result{}, errors.New("reload: the config store or the runtime is not wired")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	log := r.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	path := r.Store.Path()
	snap, problems, err := r.Store.Prepare(ctx)
	if err != nil {
		log.Warn("reload refused: the running config stays", "problems", len(problems))
		if len(problems) == 0 {
			problems = []config.Problem{{Message: err.Error(), Severity: config.SevError, File: path, Fix: "check with `moltbot config validate`"}}
		}
		return Result{Problems: problems}, nil
	}
	tok, src, err := r.Token(snap)
	if err == nil {
		err = auth.CheckToken(tok)
	}
	if err != nil {
		return Result{Problems: []config.Problem{{Path: "gateway.auth.token", Message: err.Error(), Severity: config.SevError, File: path,
			Fix: "moltbot token generate, then moltbot config set gateway.auth.token -"}}}, nil
	}
	prev := r.Store.Current()
	changes, err := r.Manager.Apply(ctx, snap.Config, r.Secret(snap))
	if err != nil {
		log.Warn("reload refused: the running runtime stays", "error", err)
		return Result{Problems: []config.Problem{{Message: err.Error(), Severity: config.SevError, File: path,
			Fix: "fix the setting named above, then run `moltbot gateway restart` again"}}}, nil
	}
	r.Store.Commit(ctx, snap)
	res := Result{Applied: true, Changes: []string{"config re-read and validated: " + path}}
	if r.Auth != nil && r.Auth.Set(tok) {
		if r.OnToken != nil {
			r.OnToken(tok, src)
		}
		res.Changes = append(res.Changes, fmt.Sprintf("gateway token rotated (source %s): the old token is refused and its open streams are closed", src))
	}
	res.Changes = append(res.Changes, changes...)
	if prev != nil {
		res.Changes = append(res.Changes, RestartOnly(prev.View, snap.View)...)
	}
	res.Problems = append(res.Problems, snap.Warnings...)
	return res, nil
}

// AddOwner writes sender into channels.<channel>.owner through the config
// store (validated, secrets kept encrypted, sealed backup, atomic write)
// and reloads, so the owners change at once (pairing approve --owner).
func (r *Reloader) AddOwner(ctx context.Context, channel, sender string) error {
	var cur []string
	if snap := r.Store.Current(); snap != nil {
		cur = snap.View.Channels[channel].Owner
	}
	next, changed, err := policy.WithOwner(cur, sender)
	if err != nil || !changed {
		return err
	}
	b, err := json.Marshal(next)
	if err != nil {
		return err
	}
	path := "channels." + channel + ".owner"
	if _, err := r.Store.Set(ctx, path, string(b), false, false); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	res, err := r.Reload(ctx)
	if err != nil {
		return fmt.Errorf("%s written; reload failed (run `moltbot gateway restart`): %w", path, err)
	}
	if !res.Applied {
		return fmt.Errorf("%s written but the reload was refused (run `moltbot config validate`, then `moltbot gateway restart`): %w", path, errs.ErrFailedPrecondition)
	}
	return nil
}
