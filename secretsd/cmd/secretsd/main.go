// Command secretsd serves the Secrets API: the only process that reads keys/.
package main

import (
	"flag"
	"os"

	"google.golang.org/grpc"

	secretsv1 "github.com/moltbot/moltbot-secure/proto/secrets/v1"
	"github.com/moltbot/moltbot-secure/services/auth"
	"github.com/moltbot/moltbot-secure/services/server"
)

const name = "secretsd"

func main() {
	b := server.Base{Name: name}
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	b.Flags(fs, "0.0.0.0:18790")
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
		secretsv1.Secrets_Encrypt_FullMethodName: {auth.IDGateway, auth.IDCLI},
		secretsv1.Secrets_Decrypt_FullMethodName: {auth.IDGateway, auth.IDCLI},
		secretsv1.Secrets_Rotate_FullMethodName:  {auth.IDGateway, auth.IDCLI},
		secretsv1.Secrets_Rewrap_FullMethodName:  {auth.IDGateway, auth.IDCLI},
		secretsv1.Secrets_Status_FullMethodName:  {auth.IDGateway, auth.IDCLI},
		secretsv1.Secrets_Retire_FullMethodName:  {auth.IDGateway, auth.IDCLI},
	}
	srv, err := ld.InternalServer(authz, func(r grpc.ServiceRegistrar) {
		secretsv1.RegisterSecretsServer(r, secretsv1.UnimplementedSecretsServer{})
	})
	if err != nil {
		return err
	}
	ctx, cancel := server.SignalContext()
	defer cancel()
	return srv.Run(ctx)
}
