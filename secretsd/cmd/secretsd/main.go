// Command secretsd serves the Secrets API: the only process that reads keys/.
package main

import (
	"flag"
	"os"
	"path/filepath"

	"google.golang.org/grpc"

	"github.com/moltbot/moltbot-secure/secretsd/internal/api"
	"github.com/moltbot/moltbot-secure/secretsd/internal/keyring"
	"github.com/moltbot/moltbot-secure/secretsd/internal/secretfiles"
	"github.com/moltbot/moltbot-secure/services/server"
)

const name = "secretsd"

// version is set with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	b := server.Base{Name: name, Version: version}
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	b.Flags(fs, "0.0.0.0:18790")
	fs.StringVar(&filesDir, "secret-files-dir", os.Getenv("MOLTBOT_SECRET_FILES_DIR"),
		"directory secretsd writes for ${file:NAME} references (compose: the secret-files volume at /secret-files); empty: refused")
	server.Main(&b, fs, func() error { return run(b) })
}

// filesDir is the secret-files volume (flag or MOLTBOT_SECRET_FILES_DIR).
var filesDir string

// KeyFile is the keyring inside the state dir; secretsd is its only reader.
func keyFile(stateDir string) string { return filepath.Join(stateDir, "keys", "secrets.key") }

func run(b server.Base) error {
	ld, err := b.Load()
	if err != nil {
		return err
	}
	// A key file that exists but does not load is refused with the fix
	// (keyring.FileStore); it is never regenerated, which would orphan
	// every secret sealed under it.
	kr, err := keyring.Open(keyring.Config{Store: keyring.NewFileStore(keyFile(ld.Base.StateDir))})
	if err != nil {
		return err
	}
	st := kr.Status()
	ld.Logger.Info("keyring loaded", "file", st.Location, "primary", st.Primary, "keys", len(st.Keys))
	svc := api.New(api.Config{Keyring: kr, Files: secretfiles.New(filesDir), Logger: ld.Logger})
	srv, err := ld.InternalServer(api.Authz(), func(r grpc.ServiceRegistrar) { api.RegisterService(r, svc) })
	if err != nil {
		return err
	}
	ctx, cancel := server.SignalContext()
	defer cancel()
	return srv.Run(ctx)
}
