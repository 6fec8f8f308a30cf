package configstore

import (
	"context"
	"errors"

	"github.com/moltbot/moltbot-secure/services/config"
)

// Prepare loads the config on disk like Load but does not make it current,
// so a reload can check more (the token rule) before committing. On a
// validation failure it also returns the structured problems.
func (s *Store) Prepare(ctx context.Context) (*Snapshot, []config.Problem, error) {
	snap, err := s.load(ctx)
	if err == nil {
		return snap, nil, nil
	}
	var problems []config.Problem
	if c, rerr := s.read(); rerr == nil {
		problems = config.Errors(c.Validate())
	} else {
		var pe *config.ParseError
		if errors.As(rerr, &pe) {
			problems = []config.Problem{{File: pe.File, Line: pe.Line, Message: pe.Error(), Severity: config.SevError, Fix: "fix the syntax, or `moltbot rollback`"}}
		}
	}
	if len(problems) == 0 {
		problems = []config.Problem{{File: s.cfg.Path, Message: err.Error(), Severity: config.SevError}}
	}
	return nil, problems, err
}

// Commit makes snap current: the reload is applied, and recorded as the
// caller's in ctx (none for SIGHUP).
func (s *Store) Commit(ctx context.Context, snap *Snapshot) {
	if snap == nil {
		return
	}
	s.mu.Lock()
	s.cur = snap
	s.mu.Unlock()
	s.record(ctx, "config.reload", s.cfg.Path, nil)
}
