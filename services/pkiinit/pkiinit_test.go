package pkiinit

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/auth"
)

func TestInitIsIdempotentAndTokensPassTheRule(t *testing.T) {
	pki := filepath.Join(t.TempDir(), "pki")
	res, err := Init(Options{PKIDir: pki})
	require.NoError(t, err)
	require.NotEmpty(t, res.Created)
	tok1, err := os.ReadFile(filepath.Join(pki, "gateway.token"))
	require.NoError(t, err)
	require.NoError(t, auth.CheckToken(string(tok1[:len(tok1)-1])))

	res, err = Init(Options{PKIDir: pki})
	require.NoError(t, err)
	require.Empty(t, res.Created, "second run keeps everything")
	tok2, _ := os.ReadFile(filepath.Join(pki, "gateway.token"))
	require.Equal(t, tok1, tok2)

	var digests map[string]string
	b, err := os.ReadFile(filepath.Join(pki, auth.TokenDigestsFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &digests))
	require.Len(t, digests, len(Identities()))
	st, err := auth.LoadServiceTokens(filepath.Join(pki, auth.TokenDigestsFile))
	require.NoError(t, err)
	id, _, ok := st.Verify(auth.IDGateway, string(tok1[:len(tok1)-1]))
	require.True(t, ok)
	require.Equal(t, auth.IDGateway, id)
}

func TestRotateKeepsTokensAndChangesLeaves(t *testing.T) {
	pki := filepath.Join(t.TempDir(), "pki")
	_, err := Init(Options{PKIDir: pki})
	require.NoError(t, err)
	before, _ := os.ReadFile(filepath.Join(pki, "secretsd.pem"))
	tok, _ := os.ReadFile(filepath.Join(pki, "secretsd.token"))
	_, err = Rotate(pki, true, time.Now())
	require.NoError(t, err)
	after, _ := os.ReadFile(filepath.Join(pki, "secretsd.pem"))
	require.NotEqual(t, before, after)
	tok2, _ := os.ReadFile(filepath.Join(pki, "secretsd.token"))
	require.Equal(t, tok, tok2)
}

func TestParseOwners(t *testing.T) {
	_, err := ParseOwners([]string{"gateway=65101"})
	require.ErrorContains(t, err, "uid:gid")
	_, err = ParseOwners([]string{"nobody=1:1"})
	require.ErrorContains(t, err, "id one of")
	m, err := ParseOwners([]string{"gateway=65101:65101"})
	require.NoError(t, err)
	require.Equal(t, 65101, m["gateway"].UID)
}

func TestTenThousandGeneratedTokensPass(t *testing.T) {
	for i := 0; i < 10000; i++ {
		tok, err := auth.GenerateToken(rand.Reader)
		require.NoError(t, err)
		require.NoError(t, auth.CheckToken(tok))
	}
}
