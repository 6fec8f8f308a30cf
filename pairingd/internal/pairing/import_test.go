package pairing

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/errs"
)

func TestImportUpstream(t *testing.T) {
	ctx := context.Background()
	s, st, clk := newService(t, nil)
	now := clk.Now()
	fresh := now.Add(-10 * time.Minute).Format(time.RFC3339Nano)
	old := now.Add(-2 * time.Hour).Format(time.RFC3339Nano)
	pairingJSON := []byte(`{
  "version": 1,
  "requests": [
    {"id": "111", "code": "ABCD2345", "createdAt": "` + fresh + `", "lastSeenAt": "` + fresh + `", "meta": {"username": "alice", "firstName": ""}},
    {"id": 222, "code": "wxyz6789", "createdAt": "` + fresh + `", "lastSeenAt": "` + fresh + `", "futureField": {"x": 1}},
    {"id": "333", "code": "EFGH2345", "createdAt": "` + old + `", "lastSeenAt": "` + old + `"},
    {"id": "444", "code": "BAD0CODE", "createdAt": "` + fresh + `", "lastSeenAt": "` + fresh + `"},
    {"id": "555", "code": "JKLM2345", "createdAt": "` + fresh + `", "lastSeenAt": "` + fresh + `"}
  ]
}`)
	allowJSON := []byte(`{"version":1,"allowFrom":["900","tg:901", 902, "*", "", "900"],"accountId":"default"}`)

	res, err := s.Import(ctx, "telegram", pairingJSON, allowJSON)
	require.NoError(t, err)
	// pending: 111, 222, 555 imported; 333 expired, 444 bad code.
	// allowed: 900, 901, 902; "*", "" and duplicate 900 skipped.
	require.Equal(t, ImportResult{PendingImported: 3, AllowedImported: 3, Skipped: 5}, res)

	p, err := st.ListPending("telegram")
	require.NoError(t, err)
	require.Len(t, p, 3)
	require.Equal(t, map[string]string{"username": "alice"}, p[0].Meta)

	got, err := s.Approve(ctx, "cli", "telegram", "wxyz6789")
	require.NoError(t, err)
	require.Equal(t, "222", got.SenderID)
	for _, id := range []string{"900", "901", "902", "222"} {
		ok, err := s.IsAllowed(ctx, "telegram", id)
		require.NoError(t, err)
		require.True(t, ok, id)
	}

	// Importing again changes nothing.
	res, err = s.Import(ctx, "telegram", pairingJSON, allowJSON)
	require.NoError(t, err)
	require.Zero(t, res.PendingImported+res.AllowedImported)

	// Either file may be absent.
	res, err = s.Import(ctx, "local", nil, []byte(`{"version":1,"allowFrom":["alice"]}`))
	require.NoError(t, err)
	require.Equal(t, 1, res.AllowedImported)
}

func TestImportStrictTypes(t *testing.T) {
	tests := []struct {
		name      string
		pairing   string
		allow     string
		wantInMsg string
	}{
		{"not json", `{`, ``, "telegram-pairing.json"},
		{"version 2", `{"version":2,"requests":[]}`, ``, "version 2"},
		{"version string", `{"version":"1"}`, ``, "telegram-pairing.json"},
		{"requests not array", `{"version":1,"requests":{}}`, ``, "telegram-pairing.json"},
		{"code number", `{"version":1,"requests":[{"id":"1","code":12345678,"createdAt":"2026-01-01T00:00:00Z"}]}`, ``, "telegram-pairing.json"},
		{"meta value number", `{"version":1,"requests":[{"id":"1","code":"ABCD2345","createdAt":"2026-01-01T00:00:00Z","meta":{"a":1}}]}`, ``, "telegram-pairing.json"},
		{"id object", `{"version":1,"requests":[{"id":{},"code":"ABCD2345","createdAt":"2026-01-01T00:00:00Z"}]}`, ``, "requests[0].id"},
		{"id float", `{"version":1,"requests":[{"id":1.5,"code":"ABCD2345","createdAt":"2026-01-01T00:00:00Z"}]}`, ``, "requests[0].id"},
		{"allowFrom bool", ``, `{"version":1,"allowFrom":[true]}`, "allowFrom[0]"},
		{"allowFrom string", ``, `{"version":1,"allowFrom":"123"}`, "telegram-allowFrom.json"},
		{"nested 50000 deep", `{"version":1,"requests":` + strings.Repeat("[", 50000) + strings.Repeat("]", 50000) + `}`, ``, "telegram-pairing.json:1: file nests 50001 deep; the limit is 64"},
		{"duplicate key", ``, `{"version":1,"allowFrom":["1"],"allowFrom":["2"]}`, `telegram-allowFrom.json:1: key "allowFrom" appears twice`},
		{"invalid UTF-8", ``, "{\"version\":1,\"allowFrom\":[\"\xff\"]}", "telegram-allowFrom.json:1: file is not valid UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, st, _ := newService(t, nil)
			// A valid allowFrom alongside a bad pairing file must not be stored either.
			allow := tc.allow
			if allow == "" {
				allow = `{"version":1,"allowFrom":["1"]}`
			}
			_, err := s.Import(context.Background(), "telegram", []byte(tc.pairing), []byte(allow))
			require.ErrorIs(t, err, errs.ErrInvalidArgument)
			require.Contains(t, err.Error(), tc.wantInMsg)
			a, err := st.ListAllowed("")
			require.NoError(t, err)
			require.Empty(t, a)
		})
	}
}
