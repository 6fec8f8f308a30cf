package agent

import (
	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	"github.com/moltbot/moltbot-secure/services/sessionkey"
)

// ProfileChoice is the sandbox a session's commands run in, and why.
type ProfileChoice struct {
	Profile        sandboxv1.Profile
	OwnerWorkspace bool
	Why            string
}

// ChooseProfile is the one rule for which sandbox profile a session gets;
// the gateway itself never runs a command. The owner's main session is the
// main session key AND an owner sender: both, so a main key reached any
// other way still gets no workspace.
//
//	mode       owner's main session      every other session
//	non-main   main + owner workspace    hardened
//	off        main + owner workspace    main network and limits, no workspace
//	all        hardened                  hardened
func ChooseProfile(mode sandboxv1.Mode, sessionKey string, owner bool) ProfileChoice {
	ownerMain := owner && sessionkey.IsMain(sessionKey, "")
	switch {
	case mode == sandboxv1.Mode_MODE_ALL:
		return ProfileChoice{Profile: sandboxv1.Profile_PROFILE_HARDENED,
			Why: "mode all: every session runs hardened, the owner's main session too"}
	case ownerMain:
		return ProfileChoice{Profile: sandboxv1.Profile_PROFILE_MAIN, OwnerWorkspace: true,
			Why: "the owner's main session: main profile (egress network) with the owner's workspace"}
	case mode == sandboxv1.Mode_MODE_OFF:
		return ProfileChoice{Profile: sandboxv1.Profile_PROFILE_MAIN,
			Why: "mode off: the main profile's network and limits, but only the owner's main session mounts the owner's workspace"}
	}
	return ProfileChoice{Profile: sandboxv1.Profile_PROFILE_HARDENED,
		Why: "not the owner's main session (groups, approved and allowlisted senders): hardened"}
}
