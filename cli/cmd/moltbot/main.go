// Command moltbot is the operator CLI: a thin client of the gateway, plus
// the offline commands an operator needs when the gateway does not start.
package main

import (
	"fmt"
	"os"

	"github.com/moltbot/moltbot-secure/cli/internal/cmd/root"
	"github.com/moltbot/moltbot-secure/cli/internal/cmdutil"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	f := cmdutil.New()
	defer f.Close()
	err := root.New(f, version).Execute()
	if err != nil {
		var d *cmdutil.DegradedError
		if !asDegraded(err, &d) {
			fmt.Fprintln(os.Stderr, "moltbot:", err)
		}
	}
	f.Close()
	os.Exit(cmdutil.ExitCode(err))
}

func asDegraded(err error, d **cmdutil.DegradedError) bool {
	e, ok := err.(*cmdutil.DegradedError)
	*d = e
	return ok
}
