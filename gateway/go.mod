module github.com/moltbot/moltbot-secure/gateway

go 1.26.0

require (
	github.com/hashicorp/go-hclog v1.6.3
	github.com/moltbot/moltbot-secure/proto v0.0.0
	github.com/moltbot/moltbot-secure/services v0.0.0
	github.com/stretchr/testify v1.12.1
	go.etcd.io/bbolt v1.4.3
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/fatih/color v1.13.0 // indirect
	github.com/google/renameio/v2 v2.0.2 // indirect
	github.com/grpc-ecosystem/go-grpc-middleware/v2 v2.3.4 // indirect
	github.com/mattn/go-colorable v0.1.12 // indirect
	github.com/mattn/go-isatty v0.0.14 // indirect
	github.com/titanous/json5 v1.0.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
)

replace github.com/moltbot/moltbot-secure/proto => ../proto

replace github.com/moltbot/moltbot-secure/services => ../services
