package sandbox

import (
	"fmt"
	"path"
	"strings"

	"github.com/moltbot/moltbot-secure/services/errs"
)

// Profile is the kind of sandbox a session's commands run in. The gateway
// runs no command itself; it picks the profile (agent.ChooseProfile) and
// sandboxd builds it. The zero value is hardened, so a request that names
// no profile fails closed.
type Profile int

// Profiles.
const (
	// ProfileHardened: network as the policy says (default none), the
	// policy's workspace access, shared warm pool.
	ProfileHardened Profile = iota
	// ProfileMain: the owner's main session (and, under mode off, every
	// session without the owner's workspace): egress network by default.
	// Still non-root, cap-drop ALL, no-new-privileges, read-only root,
	// sized tmpfs, and never the engine socket or a service's state or PKI.
	ProfileMain
)

func (p Profile) String() string {
	if p == ProfileMain {
		return "main"
	}
	return "hardened"
}

// DefaultMainNetwork is the main profile's network when the config sets
// none (agents.defaults.sandbox.main.network): Docker's default bridge,
// which gives egress but no published ports.
const DefaultMainNetwork = "bridge"

// Path segments that name a service's state, keys or PKI. A main-profile
// bind whose source or destination has one is refused: the owner's shell
// must not reach what the services guard (defence in depth; the config
// validator and the gateway never ask for such a bind).
var serviceStateSegments = []string{"pki", "state", "keys", "credentials", ".moltbot", "secret-files", "secrets.key", "gateway.token"}

// forMain turns a merged policy into the main profile's: the main network,
// the session's own workspace only (the agent's workspace is mounted rw
// for the owner's session alone, as ownerWorkspace), and refuses binds of
// state, PKI or the engine socket.
func forMain(p Policy) (Policy, error) {
	p.Network = p.MainNetwork
	if p.Network == "" {
		p.Network = DefaultMainNetwork
	}
	p.WorkspaceAccess = WorkspaceNone
	for _, b := range p.Binds {
		if err := checkMainBind(b); err != nil {
			return Policy{}, err
		}
	}
	return p, nil
}

func checkMainBind(b string) error {
	parts := strings.Split(b, ":")
	for _, side := range parts[:min(len(parts), 2)] {
		clean := path.Clean(side)
		if strings.HasSuffix(clean, ".sock") || strings.Contains(clean, "docker.sock") {
			return fmt.Errorf("sandbox profile main: bind %q exposes the Docker socket (root on the host); remove it from agents.defaults.sandbox.docker.binds: %w", b, errs.ErrPermissionDenied)
		}
		for _, seg := range strings.Split(clean, "/") {
			for _, bad := range serviceStateSegments {
				if strings.EqualFold(seg, bad) {
					return fmt.Errorf("sandbox profile main: bind %q reaches a service's state or PKI (%q); the owner's sandbox never mounts it: remove it from agents.defaults.sandbox.docker.binds: %w", b, seg, errs.ErrPermissionDenied)
				}
			}
		}
	}
	return nil
}
