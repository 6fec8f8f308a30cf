// Command fakeopenai serves the fake OpenAI chat-completions API of package
// openaitest on an address, so a containerised gateway can be pointed at it
// (models.providers.openai.baseUrl) in integration tests. Test use only.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/moltbot/moltbot-secure/gateway/internal/agent/openaitest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8082", "listen address")
	key := flag.String("key", os.Getenv("FAKE_OPENAI_KEY"), "API key the fake accepts (default $FAKE_OPENAI_KEY; empty accepts any)")
	flag.Parse()
	srv := &http.Server{Addr: *addr, Handler: openaitest.NewHandler(*key), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(os.Stderr, "fakeopenai: listening on %s\n", *addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "fakeopenai:", err)
		os.Exit(1)
	}
}
