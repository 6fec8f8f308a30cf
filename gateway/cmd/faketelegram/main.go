// Command faketelegram serves the fake Telegram Bot API of package
// telegramtest on an address, so a containerized gateway can be pointed at it
// (channels.telegram.baseUrl) in integration tests. Test use only.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/moltbot/moltbot-secure/gateway/internal/channels/telegram/telegramtest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	token := flag.String("token", os.Getenv("FAKE_TELEGRAM_TOKEN"), "bot token the fake accepts (default $FAKE_TELEGRAM_TOKEN)")
	flag.Parse()
	if *token == "" {
		fmt.Fprintln(os.Stderr, "faketelegram: give -token or set FAKE_TELEGRAM_TOKEN")
		os.Exit(2)
	}
	srv := &http.Server{Addr: *addr, Handler: telegramtest.NewHandler(*token), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(os.Stderr, "faketelegram: listening on %s\n", *addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "faketelegram:", err)
		os.Exit(1)
	}
}
