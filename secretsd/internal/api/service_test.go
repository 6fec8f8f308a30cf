package api

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
)

func TestEveryMethodHasAnAuthzRow(t *testing.T) {
	require.Empty(t, auth.MissingRows(Authz(), &secretsv1.Secrets_ServiceDesc))
}

// TestAuthzMatrix calls every method as every identity: only the gateway and
// the admin CLI get past authorization.
func TestAuthzMatrix(t *testing.T) {
	e := start(t)
	seal, err := e.as(t, auth.IDGateway).Encrypt(ctxT(t), &secretsv1.EncryptRequest{Plaintext: []byte("x"), Aad: "a.b"})
	require.NoError(t, err)
	calls := map[string]func(c secretsv1.SecretsClient) error{
		"Encrypt": func(c secretsv1.SecretsClient) error {
			_, err := c.Encrypt(ctxT(t), &secretsv1.EncryptRequest{Plaintext: []byte("x"), Aad: "a.b"})
			return err
		},
		"Decrypt": func(c secretsv1.SecretsClient) error {
			_, err := c.Decrypt(ctxT(t), &secretsv1.DecryptRequest{Envelope: seal.GetEnvelope(), Aad: "a.b"})
			return err
		},
		"Rewrap": func(c secretsv1.SecretsClient) error {
			_, err := c.Rewrap(ctxT(t), &secretsv1.RewrapRequest{Envelope: seal.GetEnvelope(), Aad: "a.b"})
			return err
		},
		"Status": func(c secretsv1.SecretsClient) error {
			_, err := c.Status(ctxT(t), &secretsv1.StatusRequest{})
			return err
		},
		// Retire of an unknown key: authorized callers get NotFound, which
		// shows they got past authorization without changing the keyring.
		"Retire": func(c secretsv1.SecretsClient) error {
			_, err := c.Retire(ctxT(t), &secretsv1.RetireRequest{Kid: "k99"})
			return err
		},
		// A too-short passphrase and an empty import: InvalidArgument once
		// past authorization, with nothing exported or replaced.
		"ExportKey": func(c secretsv1.SecretsClient) error {
			_, err := c.ExportKey(ctxT(t), &secretsv1.ExportKeyRequest{Passphrase: []byte("short")})
			return err
		},
		"ImportKey": func(c secretsv1.SecretsClient) error {
			_, err := c.ImportKey(ctxT(t), &secretsv1.ImportKeyRequest{Passphrase: []byte("whatever-long-enough")})
			return err
		},
		"PutSecretFile": func(c secretsv1.SecretsClient) error {
			_, err := c.PutSecretFile(ctxT(t), &secretsv1.PutSecretFileRequest{Name: "matrix.key", Content: []byte("x")})
			return err
		},
		"ListSecretFiles": func(c secretsv1.SecretsClient) error {
			_, err := c.ListSecretFiles(ctxT(t), &secretsv1.ListSecretFilesRequest{})
			return err
		},
	}
	// The secret-files RPCs are the gateway's alone: it proxies the owner.
	gatewayOnly := map[string]bool{"PutSecretFile": true, "ListSecretFiles": true, "ExportKey": true, "ImportKey": true}
	for _, m := range secretsv1.Secrets_ServiceDesc.Methods {
		if m.MethodName == "Rotate" {
			continue // changes the keyring; covered in TestRotateRewrapRetire
		}
		require.Contains(t, calls, m.MethodName, "add the method to this matrix")
	}
	for _, id := range []string{auth.IDGateway, auth.IDCLI, auth.IDPairingd, auth.IDSandboxd, auth.IDSecretsd} {
		c := e.as(t, id)
		for name, call := range calls {
			err := call(c)
			allowed := id == auth.IDGateway || (id == auth.IDCLI && !gatewayOnly[name])
			switch {
			case !allowed:
				require.Equal(t, codes.PermissionDenied, status.Code(err), "%s as %s: %v", name, id, err)
			case name == "ExportKey" || name == "ImportKey":
				require.Equal(t, codes.InvalidArgument, status.Code(err), "%s as %s: %v", name, id, err)
			case name == "Retire":
				require.Equal(t, codes.NotFound, status.Code(err), "%s as %s: %v", name, id, err)
			default:
				require.NoError(t, err, "%s as %s", name, id)
			}
		}
	}
}

func TestEncryptDecrypt(t *testing.T) {
	e := start(t)
	c := e.as(t, auth.IDGateway)
	const secret = "sk-live-0123456789abcdefghijklmnop"
	enc, err := c.Encrypt(ctxT(t), &secretsv1.EncryptRequest{Plaintext: []byte(secret), Aad: "gateway.auth.token"})
	require.NoError(t, err)
	require.Equal(t, "k1", enc.GetKid())
	require.NotContains(t, enc.GetEnvelope(), secret)
	require.True(t, strings.HasPrefix(enc.GetEnvelope(), `{"$enc":"v1","kid":"k1","alg":"AES-256-GCM"`), enc.GetEnvelope())

	truncated := strings.Replace(enc.GetEnvelope(), `"ct":"`, `"ct":"AAAA`, 1)
	truncated = truncated[:strings.Index(truncated, `"ct":"`)+10] + `"}`
	wrongKid := strings.Replace(enc.GetEnvelope(), `"kid":"k1"`, `"kid":"k7"`, 1)
	tests := []struct {
		name     string
		envelope string
		aad      string
		code     codes.Code
		msg      []string
	}{
		{"right field", enc.GetEnvelope(), "gateway.auth.token", codes.OK, nil},
		{"moved to another field", enc.GetEnvelope(), "channels.telegram.botToken", codes.InvalidArgument, []string{"channels.telegram.botToken", "does not belong to this field"}},
		{"empty aad", enc.GetEnvelope(), "", codes.InvalidArgument, []string{"aad"}},
		{"truncated envelope", truncated, "gateway.auth.token", codes.InvalidArgument, []string{"gateway.auth.token", "envelope"}},
		{"not JSON", "hello", "gateway.auth.token", codes.InvalidArgument, []string{"not a JSON object"}},
		{"wrong key id", wrongKid, "gateway.auth.token", codes.NotFound, []string{"gateway.auth.token", `key id "k7"`, "have k1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.Decrypt(ctxT(t), &secretsv1.DecryptRequest{Envelope: tc.envelope, Aad: tc.aad})
			require.Equal(t, tc.code, status.Code(err), "err: %v", err)
			if tc.code == codes.OK {
				require.Equal(t, secret, string(resp.GetPlaintext()))
				return
			}
			for _, m := range tc.msg {
				require.Contains(t, status.Convert(err).Message(), m)
			}
			require.NotContains(t, err.Error(), secret)
		})
	}

	_, err = c.Encrypt(ctxT(t), &secretsv1.EncryptRequest{Plaintext: make([]byte, MaxPlaintext+1), Aad: "x"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
}

func TestRotateRewrapRetire(t *testing.T) {
	e := start(t)
	c := e.as(t, auth.IDCLI)
	old, err := c.Encrypt(ctxT(t), &secretsv1.EncryptRequest{Plaintext: []byte("v1"), Aad: "p"})
	require.NoError(t, err)

	rot, err := c.Rotate(ctxT(t), &secretsv1.RotateRequest{})
	require.NoError(t, err)
	require.Equal(t, "k2", rot.GetPrimary().GetKid())
	require.True(t, rot.GetPrimary().GetPrimary())

	// The old envelope still decrypts after rotate.
	d, err := c.Decrypt(ctxT(t), &secretsv1.DecryptRequest{Envelope: old.GetEnvelope(), Aad: "p"})
	require.NoError(t, err)
	require.Equal(t, "k1", d.GetKid())

	// Retiring the primary is refused.
	_, err = c.Retire(ctxT(t), &secretsv1.RetireRequest{Kid: "k2"})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))

	rw, err := c.Rewrap(ctxT(t), &secretsv1.RewrapRequest{Envelope: old.GetEnvelope(), Aad: "p"})
	require.NoError(t, err)
	require.True(t, rw.GetChanged())
	require.Equal(t, "k2", rw.GetKid())
	again, err := c.Rewrap(ctxT(t), &secretsv1.RewrapRequest{Envelope: rw.GetEnvelope(), Aad: "p"})
	require.NoError(t, err)
	require.False(t, again.GetChanged())
	require.Equal(t, rw.GetEnvelope(), again.GetEnvelope())

	_, err = c.Retire(ctxT(t), &secretsv1.RetireRequest{Kid: "k1"})
	require.NoError(t, err)
	st, err := c.Status(ctxT(t), &secretsv1.StatusRequest{})
	require.NoError(t, err)
	require.Equal(t, "k2", st.GetPrimaryKid())
	require.Len(t, st.GetKeys(), 1)
	require.Equal(t, e.keyFile, st.GetKeyFile())

	// After retire: the rewrapped value opens; the old one names the missing key.
	d, err = c.Decrypt(ctxT(t), &secretsv1.DecryptRequest{Envelope: rw.GetEnvelope(), Aad: "p"})
	require.NoError(t, err)
	require.Equal(t, "v1", string(d.GetPlaintext()))
	_, err = c.Decrypt(ctxT(t), &secretsv1.DecryptRequest{Envelope: old.GetEnvelope(), Aad: "p"})
	require.Equal(t, codes.NotFound, status.Code(err))

	// Status never carries key material: the file's base64 keys are absent.
	raw, err := os.ReadFile(e.keyFile)
	require.NoError(t, err)
	for _, line := range strings.Split(string(raw), "\n") {
		if i := strings.Index(line, `"key": "`); i >= 0 {
			key := strings.TrimSuffix(strings.TrimSpace(line[i+8:]), `"`)
			require.NotContains(t, st.String(), key)
		}
	}
	_, err = c.Retire(ctxT(t), &secretsv1.RetireRequest{})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
}

// TestExportImportOverMTLS moves a keyring from one real secretsd to a fresh
// one through the RPCs: the envelope sealed by the first opens in the second,
// and a second import is refused once the second has sealed a user secret.
func TestExportImportOverMTLS(t *testing.T) {
	a, b := start(t), start(t)
	ca, cb := a.as(t, auth.IDGateway), b.as(t, auth.IDGateway)
	pass := []byte("correct horse battery staple")
	enc, err := ca.Encrypt(ctxT(t), &secretsv1.EncryptRequest{Plaintext: []byte("bot-token-A"), Aad: "channels.telegram.botToken"})
	require.NoError(t, err)

	exp, err := ca.ExportKey(ctxT(t), &secretsv1.ExportKeyRequest{Passphrase: pass})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(exp.GetSealed()), "-----BEGIN AGE ENCRYPTED FILE-----"))
	keyFileA, err := os.ReadFile(a.keyFile)
	require.NoError(t, err)
	require.NotContains(t, string(exp.GetSealed()), "\"key\"", "export must be ciphertext only")
	require.NotContains(t, string(exp.GetSealed()), string(keyFileA))

	tests := []struct {
		name   string
		sealed []byte
		pass   []byte
		code   codes.Code
		msg    string
	}{
		{"wrong passphrase", exp.GetSealed(), []byte("not the passphrase at all"), codes.InvalidArgument, "passphrase does not open"},
		{"not an export", []byte("hello"), pass, codes.InvalidArgument, "not a readable key export"},
		{"right passphrase", exp.GetSealed(), pass, codes.OK, ""},
		// b has now opened nothing yet, so a repeat is still allowed.
		{"repeat before any use", exp.GetSealed(), pass, codes.OK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := cb.ImportKey(ctxT(t), &secretsv1.ImportKeyRequest{Sealed: tc.sealed, Passphrase: tc.pass})
			require.Equal(t, tc.code, status.Code(err), "%v", err)
			if tc.code != codes.OK {
				require.Contains(t, status.Convert(err).Message(), tc.msg)
				return
			}
			require.Equal(t, exp.GetPrimaryKid(), resp.GetPrimaryKid())
			require.FileExists(t, resp.GetBackupPath())
		})
	}
	dec, err := cb.Decrypt(ctxT(t), &secretsv1.DecryptRequest{Envelope: enc.GetEnvelope(), Aad: "channels.telegram.botToken"})
	require.NoError(t, err)
	require.Equal(t, "bot-token-A", string(dec.GetPlaintext()))

	// b has now opened a user secret: a further import is refused.
	_, err = cb.ImportKey(ctxT(t), &secretsv1.ImportKeyRequest{Sealed: exp.GetSealed(), Passphrase: pass})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), "already protects secrets")
	require.NotContains(t, err.Error(), string(pass))
}

// TestSecretFiles: the gateway puts a file through real mTLS gRPC; it lands
// 0640 in the directory, is listed without content, and bad names or sizes
// are refused with InvalidArgument naming the rule.
func TestSecretFiles(t *testing.T) {
	e := start(t)
	c := e.as(t, auth.IDGateway)
	const content = "sk-live-0123456789abcdefghijklmnop"
	r, err := c.PutSecretFile(ctxT(t), &secretsv1.PutSecretFileRequest{Name: "openai.key", Content: []byte(content)})
	require.NoError(t, err)
	require.Equal(t, "${file:openai.key}", r.GetFile().GetReference())
	require.False(t, r.GetReplaced())
	st, err := os.Stat(filepath.Join(e.files, "openai.key"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o640), st.Mode().Perm())
	b, err := os.ReadFile(filepath.Join(e.files, "openai.key"))
	require.NoError(t, err)
	require.Equal(t, content, string(b))

	list, err := c.ListSecretFiles(ctxT(t), &secretsv1.ListSecretFilesRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetFiles(), 1)
	require.Equal(t, int64(len(content)), list.GetFiles()[0].GetSize())
	require.NotContains(t, list.String(), content)

	tests := []struct {
		name, file string
		size       int
		msg        string
	}{
		{"traversal", "../keys/secrets.key", 1, "no slashes"},
		{"absolute", "/etc/passwd", 1, "no slashes"},
		{"dotfile", ".x", 1, "not starting with a dot"},
		{"too big", "big", 1<<20 + 1, "the limit is 1 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.PutSecretFile(ctxT(t), &secretsv1.PutSecretFileRequest{Name: tt.file, Content: make([]byte, tt.size)})
			require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
			require.Contains(t, status.Convert(err).Message(), tt.msg)
		})
	}
}
