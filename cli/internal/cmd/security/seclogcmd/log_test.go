package seclogcmd

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestArchiveNote(t *testing.T) {
	tests := []struct {
		name, line, want string
	}{
		{"unverified log kept aside", `{"seq":1,"kind":"log.archived","fields":{"archived":"security.jsonl.unverified-20261201T000000Z","reason":"security log line 3: MAC does not match"},"prev":"00","mac":"ab"}`,
			"warning: the log before line 1 did not verify when the gateway started and was kept aside as logs/security.jsonl.unverified-20261201T000000Z (security log line 3: MAC does not match): inspect it"},
		{"unkeyed log kept aside", `{"seq":1,"kind":"log.keyed","fields":{"archived":"security.jsonl.unkeyed-20261201T000000Z"}}`,
			"note: the log before line 1 was written unkeyed by an older version and is kept, unverifiable, as logs/security.jsonl.unkeyed-20261201T000000Z"},
		{"ordinary first line", `{"seq":1,"kind":"auth.success"}`, ""},
		{"not JSON", `{`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, archiveNote(tc.line)) })
	}
}
