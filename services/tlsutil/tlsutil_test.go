package tlsutil

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func leaves(ids ...string) []LeafSpec {
	var out []LeafSpec
	for _, id := range ids {
		out = append(out, LeafSpec{ID: id, DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	}
	return out
}

func TestInitIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	res, err := Init(dir, leaves("a", "b"), false, now)
	require.NoError(t, err)
	require.Len(t, res.Created, 3)
	key1, _ := os.ReadFile(FilesFor(dir, "a").Key)
	res, err = Init(dir, leaves("a", "b"), false, now)
	require.NoError(t, err)
	require.Empty(t, res.Created)
	key2, _ := os.ReadFile(FilesFor(dir, "a").Key)
	require.Equal(t, key1, key2, "existing keys are never overwritten without force")
	fi, err := os.Stat(FilesFor(dir, "a").Key)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

// handshake runs one mTLS handshake between identities and returns the
// server's view of the client identity.
func handshake(t *testing.T, srv, cli *Source, serverName string) (string, error) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	got := make(chan string, 1)
	go func() {
		s := tls.Server(a, srv.ServerConfig(tls.RequireAndVerifyClientCert))
		defer s.Close() // unblocks the client's Read either way
		if err := s.Handshake(); err != nil {
			got <- ""
			return
		}
		got <- PeerIdentity(s.ConnectionState())
	}()
	c := tls.Client(b, cli.ClientConfig(serverName))
	err := c.Handshake()
	if err == nil {
		// TLS 1.3: the client finishes before the server has checked its cert.
		_, err = c.Read(make([]byte, 1))
		if id := <-got; id != "" {
			return id, nil
		}
		return "", err
	}
	<-got
	return "", err
}

func TestRotationIsPickedUpWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	_, err := Init(dir, leaves("srv", "cli"), false, now)
	require.NoError(t, err)
	srv, err := NewSource(FilesFor(dir, "srv"))
	require.NoError(t, err)
	cli, err := NewSource(FilesFor(dir, "cli"))
	require.NoError(t, err)
	id, err := handshake(t, srv, cli, "srv")
	require.NoError(t, err)
	require.Equal(t, "cli", id)
	serial := srv.Leaf().SerialNumber

	// Rotate the CA too: old and new CA are both in the bundle (overlap).
	_, err = Rotate(dir, leaves("srv"), true, now)
	require.NoError(t, err)
	fake := now.Add(2 * time.Second)
	srv.now = func() time.Time { return fake }
	cli.now = func() time.Time { return fake }
	require.NotEqual(t, serial, srv.Leaf().SerialNumber, "new leaf loaded")
	id, err = handshake(t, srv, cli, "srv")
	require.NoError(t, err, "an old-CA client still verifies during the overlap")
	require.Equal(t, "cli", id)
}

func TestServerNameChecked(t *testing.T) {
	dir := t.TempDir()
	_, err := Init(dir, leaves("srv", "cli"), false, time.Now())
	require.NoError(t, err)
	srv, _ := NewSource(FilesFor(dir, "srv"))
	cli, _ := NewSource(FilesFor(dir, "cli"))
	_, err = handshake(t, srv, cli, "someone-else")
	require.Error(t, err)
}

func TestMissingFilesNameTheFix(t *testing.T) {
	_, err := NewSource(FilesFor(filepath.Join(t.TempDir(), "nope"), "x"))
	require.ErrorContains(t, err, "moltbot certs init")
}
