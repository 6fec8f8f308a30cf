// Command pairingd serves the Pairing API: pending codes and allowlists.
package main

import (
	"flag"
	"os"

	"google.golang.org/grpc"

	pairingv1 "github.com/moltbot/moltbot-secure/proto/pairing/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/server"
)

const name = "pairingd"

func main() {
	b := server.Base{Name: name}
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	b.Flags(fs, "0.0.0.0:18791")
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		_ = fs.Parse(os.Args[2:])
		if err := server.Healthcheck(b, name); err != nil {
			server.Exit(name, err)
		}
		return
	}
	_ = fs.Parse(os.Args[1:])
	if err := run(b); err != nil {
		server.Exit(name, err)
	}
}

func run(b server.Base) error {
	ld, err := b.Load()
	if err != nil {
		return err
	}
	authz := auth.Table{
		pairingv1.Pairing_Request_FullMethodName:     {auth.IDGateway, auth.IDCLI},
		pairingv1.Pairing_List_FullMethodName:        {auth.IDGateway, auth.IDCLI},
		pairingv1.Pairing_Approve_FullMethodName:     {auth.IDGateway, auth.IDCLI},
		pairingv1.Pairing_Reject_FullMethodName:      {auth.IDGateway, auth.IDCLI},
		pairingv1.Pairing_Revoke_FullMethodName:      {auth.IDGateway, auth.IDCLI},
		pairingv1.Pairing_IsAllowed_FullMethodName:   {auth.IDGateway, auth.IDCLI},
		pairingv1.Pairing_Watch_FullMethodName:       {auth.IDGateway, auth.IDCLI},
		pairingv1.Pairing_Import_FullMethodName:      {auth.IDGateway, auth.IDCLI},
		pairingv1.Pairing_ListAllowed_FullMethodName: {auth.IDGateway, auth.IDCLI},
	}
	srv, err := ld.InternalServer(authz, func(r grpc.ServiceRegistrar) {
		pairingv1.RegisterPairingServer(r, pairingv1.UnimplementedPairingServer{})
	})
	if err != nil {
		return err
	}
	ctx, cancel := server.SignalContext()
	defer cancel()
	return srv.Run(ctx)
}
