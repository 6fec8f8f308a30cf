// Command sandboxd serves the Sandbox API: the only holder of the Docker socket.
package main

import (
	"flag"
	"os"

	"google.golang.org/grpc"

	sandboxv1 "github.com/moltbot/moltbot-secure/proto/sandbox/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/server"
)

const name = "sandboxd"

func main() {
	b := server.Base{Name: name}
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	b.Flags(fs, "0.0.0.0:18792")
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
		sandboxv1.Sandbox_Ensure_FullMethodName:   {auth.IDGateway},
		sandboxv1.Sandbox_Exec_FullMethodName:     {auth.IDGateway},
		sandboxv1.Sandbox_List_FullMethodName:     {auth.IDGateway, auth.IDCLI},
		sandboxv1.Sandbox_Explain_FullMethodName:  {auth.IDGateway, auth.IDCLI},
		sandboxv1.Sandbox_Recreate_FullMethodName: {auth.IDGateway, auth.IDCLI},
		sandboxv1.Sandbox_Prune_FullMethodName:    {auth.IDGateway, auth.IDCLI},
		sandboxv1.Sandbox_Info_FullMethodName:     {auth.IDGateway, auth.IDCLI},
	}
	srv, err := ld.InternalServer(authz, func(r grpc.ServiceRegistrar) {
		sandboxv1.RegisterSandboxServer(r, sandboxv1.UnimplementedSandboxServer{})
	})
	if err != nil {
		return err
	}
	ctx, cancel := server.SignalContext()
	defer cancel()
	return srv.Run(ctx)
}
