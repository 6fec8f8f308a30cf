// Command pairingd serves the Pairing API: pending codes and allowlists.
package main

import (
	"flag"
	"fmt"
	"path/filepath"

	"google.golang.org/grpc"

	"github.com/moltbot/moltbot-secure/pairingd/internal/api"
	"github.com/moltbot/moltbot-secure/pairingd/internal/pairing"
	"github.com/moltbot/moltbot-secure/pairingd/internal/store"
	"github.com/moltbot/moltbot-secure/services/server"
)

const name = "pairingd"

// version is set with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	b := server.Base{Name: name, Version: version}
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	b.Flags(fs, "0.0.0.0:18791")
	server.Main(&b, fs, func() error { return run(b) })
}

// DBPath is the pairing store inside the state dir.
func dbPath(stateDir string) string { return filepath.Join(stateDir, "credentials", "pairing.db") }

func run(b server.Base) error {
	ld, err := b.Load()
	if err != nil {
		return err
	}
	st, err := store.Open(dbPath(ld.Base.StateDir))
	if err != nil {
		return err
	}
	defer st.Close()
	svc, err := pairing.New(pairing.Config{Store: st, Logger: ld.Logger.Named("pairing")})
	if err != nil {
		return fmt.Errorf("pairing service: %w", err)
	}
	a := api.New(api.Config{Pairing: svc, Logger: ld.Logger})
	srv, err := ld.InternalServer(api.Authz(), func(r grpc.ServiceRegistrar) { api.RegisterService(r, a) })
	if err != nil {
		return err
	}
	ctx, cancel := server.SignalContext()
	defer cancel()
	ld.Logger.Info("pairing store", "path", dbPath(ld.Base.StateDir))
	return srv.Run(ctx)
}
