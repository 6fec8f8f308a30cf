// Command moltbot is the operator CLI: a thin client of the gateway, plus
// the offline commands an operator needs when the gateway does not start.
package main

import (
	"os"

	"github.com/moltbot/moltbot-secure/cli/internal/cmd/root"
	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	f := cmdutil.New()
	err := root.New(f, version).Execute()
	code := cmdutil.ExitOK
	if err != nil {
		e := f.Explain(err)
		cmdutil.Report(f.Err, e, f.JSON)
		code = e.Exit
	}
	f.Close()
	os.Exit(code)
}
