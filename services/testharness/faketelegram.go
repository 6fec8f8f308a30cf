package testharness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/container"
	mobynet "github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
)

// Fake Telegram (gateway/cmd/faketelegram, image moltbot-faketelegram):
// reachable from the gateway as FakeTelegramBaseURL on the stack's network,
// driven from the test through its control endpoints on a loopback port.
const (
	FakeTelegram        = "faketelegram"
	FakeTelegramPort    = 8081
	FakeTelegramBaseURL = "http://faketelegram:8081"
)

// FakeTelegramServer is a running fake Bot API container.
type FakeTelegramServer struct {
	// URL is the control base URL on the host, http://127.0.0.1:port.
	URL string
	hc  *http.Client
}

// TelegramSent is one message the bot sent (the fake's /_fake/sent rows).
type TelegramSent struct {
	Seq    int    `json:"seq"`
	ChatID string `json:"chat_id"`
	Text   string `json:"text"`
}

// StartFakeTelegram runs the fake Bot API on the stack's network, accepting
// token. Point channels.telegram.baseUrl at FakeTelegramBaseURL. It is
// removed with the stack, and its log is printed with the others on failure.
func (s *Stack) StartFakeTelegram(ctx context.Context, token string) (*FakeTelegramServer, error) {
	img := "moltbot-faketelegram:" + s.imageTag()
	if _, err := s.docker.ImageInspect(ctx, img); err != nil {
		return nil, fmt.Errorf("image %s is not available locally (run `make images`; nothing is pulled): %w", img, err)
	}
	port := strconv.Itoa(FakeTelegramPort) + "/tcp"
	c, err := testcontainers.Run(ctx, img,
		testcontainers.WithLogger(s.logger),
		testcontainers.WithName(s.name+"-"+FakeTelegram+"-"+randHex(2)),
		testcontainers.WithLabels(map[string]string{"moltbot.test": s.name}),
		network.WithNetwork([]string{FakeTelegram}, s.net),
		testcontainers.WithEnv(map[string]string{"FAKE_TELEGRAM_TOKEN": token}),
		testcontainers.WithExposedPorts(port),
		testcontainers.WithHostConfigModifier(func(h *container.HostConfig) {
			h.ReadonlyRootfs = true
			h.CapDrop = []string{"ALL"}
			h.SecurityOpt = []string{"no-new-privileges:true"}
			h.PortBindings = mobynet.PortMap{mobynet.MustParsePort(port): {{HostIP: netip.MustParseAddr(loopback), HostPort: "0"}}}
		}),
	)
	if c != nil {
		s.mu.Lock()
		s.containers[FakeTelegram] = c
		s.mu.Unlock()
	}
	if err != nil {
		return nil, fmt.Errorf("start fake telegram: %w", err)
	}
	mp, err := c.MappedPort(ctx, port)
	if err != nil {
		return nil, err
	}
	f := &FakeTelegramServer{URL: "http://" + loopback + ":" + mp.Port(), hc: &http.Client{Timeout: 10 * time.Second}}
	// Ready when the control endpoint answers on the published loopback port.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if _, err := f.Sent(wctx, "", 0); err == nil {
			return f, nil
		} else if wctx.Err() != nil {
			return nil, fmt.Errorf("fake telegram not ready: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Stack) imageTag() string {
	if s.opts.ImageTag == "" {
		return "latest"
	}
	return s.opts.ImageTag
}

// DM queues a private message from user fromID for the bot's getUpdates.
func (f *FakeTelegramServer) DM(ctx context.Context, fromID int64, username, text string) error {
	return f.post(ctx, "/_fake/dm", map[string]any{"from_id": fromID, "username": username, "text": text})
}

// Group queues a group message.
func (f *FakeTelegramServer) Group(ctx context.Context, chatID, fromID int64, text string) error {
	return f.post(ctx, "/_fake/group", map[string]any{"chat_id": chatID, "from_id": fromID, "text": text})
}

// Fail makes the fake's next call of method (e.g. "getUpdates") fail
// with the Bot API error code and description.
func (f *FakeTelegramServer) Fail(ctx context.Context, method string, code int, description string) error {
	return f.post(ctx, "/_fake/fail", map[string]any{"method": method, "error_code": code, "description": description})
}

func (f *FakeTelegramServer) post(ctx context.Context, path string, body any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.URL+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("fake telegram %s: %s: %s", path, resp.Status, msg)
	}
	return nil
}

// Sent returns the messages the bot sent to chatID ("" = all) after seq.
func (f *FakeTelegramServer) Sent(ctx context.Context, chatID string, after int) ([]TelegramSent, error) {
	q := url.Values{"after": {strconv.Itoa(after)}}
	if chatID != "" {
		q.Set("chat_id", chatID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL+"/_fake/sent?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []TelegramSent
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("fake telegram sent: %w", err)
	}
	return out, nil
}

// WaitSent polls until the bot sent at least n messages to chatID after seq.
func (f *FakeTelegramServer) WaitSent(ctx context.Context, chatID string, after, n int) ([]TelegramSent, error) {
	for {
		got, err := f.Sent(ctx, chatID, after)
		if err == nil && len(got) >= n {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, fmt.Errorf("waiting for %d message(s) to chat %s after #%d: %w (have %d, last error %v)", n, chatID, after, ctx.Err(), len(got), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
