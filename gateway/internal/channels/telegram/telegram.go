// Package telegram is the Telegram channel: the Bot API over HTTPS, with
// getUpdates long polling for ingress and sendMessage for replies.
//
// The bot token is part of every request URL (/bot<token>/<method>), so this
// package never logs a URL and strips URLs (and the token) from every error
// it returns: net/http's *url.Error would otherwise carry the token into logs
// and gRPC statuses.
package telegram

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/moltbot/moltbot-secure/gateway/internal/channels"
)

// DefaultBaseURL is the real Bot API.
const DefaultBaseURL = "https://api.telegram.org"

// MaxMessageRunes is below sendMessage's 4096-character limit, with room for
// characters Telegram counts twice (UTF-16 surrogate pairs).
const MaxMessageRunes = 4000

const maxReplyBytes = 16 << 20

// Config configures a Bot.
type Config struct {
	Token       string        // required; never logged
	Name        string        // channel name; default "telegram"
	BaseURL     string        // default DefaultBaseURL; tests point it at telegramtest
	HTTPClient  *http.Client  // default: a client with a dial/TLS timeout
	PollTimeout time.Duration // long-poll timeout; default 30 s
	MinBackoff  time.Duration // first retry delay after an error; default 1 s
	MaxBackoff  time.Duration // cap; default 30 s
	Logf        func(format string, args ...any)
}

// Bot implements channels.Channel for Telegram.
type Bot struct {
	token, name, base  string
	hc                 *http.Client
	poll               time.Duration
	minBackoff, maxBck time.Duration
	logf               func(string, ...any)

	mu        sync.Mutex
	connected bool
	lastErr   error
}

var _ channels.Channel = (*Bot)(nil)

// New validates cfg and builds a Bot.
func New(cfg Config) (*Bot, error) {
	if strings.TrimSpace(cfg.Token) == "" {
		return nil, errors.New("telegram: bot token is empty; set channels.telegram.botToken (a secretsd reference)")
	}
	if strings.ContainsAny(cfg.Token, "/?#% \t\r\n") {
		return nil, errors.New("telegram: bot token contains characters that cannot appear in a token; check channels.telegram.botToken")
	}
	b := &Bot{
		token: cfg.Token, name: cfg.Name, base: strings.TrimRight(cfg.BaseURL, "/"),
		hc: cfg.HTTPClient, poll: cfg.PollTimeout,
		minBackoff: cfg.MinBackoff, maxBck: cfg.MaxBackoff, logf: cfg.Logf,
	}
	if b.name == "" {
		b.name = "telegram"
	}
	if b.base == "" {
		b.base = DefaultBaseURL
	}
	if u, err := url.Parse(b.base); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("telegram: base URL %q must be http(s)://host[:port]", cfg.BaseURL)
	}
	if b.hc == nil {
		b.hc = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSHandshakeTimeout: 10 * time.Second,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	if b.poll <= 0 {
		b.poll = 30 * time.Second
	}
	if b.minBackoff <= 0 {
		b.minBackoff = time.Second
	}
	if b.maxBck <= 0 {
		b.maxBck = 30 * time.Second
	}
	if b.maxBck < b.minBackoff {
		b.maxBck = b.minBackoff
	}
	if b.logf == nil {
		b.logf = func(string, ...any) {}
	}
	return b, nil
}

// Name implements channels.Channel.
func (b *Bot) Name() string { return b.name }

// Status implements channels.Channel.
func (b *Bot) Status() (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.connected, b.lastErr
}

func (b *Bot) setStatus(ok bool, err error) {
	b.mu.Lock()
	b.connected, b.lastErr = ok, err
	b.mu.Unlock()
}

// scrub removes the request URL and the token from a transport error.
func (b *Bot) scrub(method string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := strings.ReplaceAll(err.Error(), b.token, "<redacted>")
	return &transportError{msg: fmt.Sprintf("telegram %s: %s", method, msg), timeout: isTimeout(err)}
}

type transportError struct {
	msg     string
	timeout bool
}

func (e *transportError) Error() string { return e.msg }
func (e *transportError) Timeout() bool { return e.timeout }

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// call POSTs params as JSON to method and decodes the result into out.
func (b *Bot) call(ctx context.Context, method string, params, out any) error {
	body, err := json.Marshal(params)
	if err != nil {
		return fmt.Errorf("telegram %s: encode request: %w", method, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.base+"/bot"+b.token+"/"+method, bytes.NewReader(body))
	if err != nil {
		return b.scrub(method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return b.scrub(method, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return b.scrub(method, err)
	}
	var r Response
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("telegram %s: HTTP %d with a reply that is not Bot API JSON", method, resp.StatusCode)
	}
	if !r.OK {
		if r.ErrorCode == 0 {
			r.ErrorCode = resp.StatusCode
		}
		return apiError(method, r)
	}
	if out != nil {
		if err := json.Unmarshal(r.Result, out); err != nil {
			return fmt.Errorf("telegram %s: decode result: %w", method, err)
		}
	}
	return nil
}

func (b *Bot) getUpdates(ctx context.Context, offset int64) ([]Update, error) {
	params := map[string]any{
		"timeout":         int(b.poll / time.Second),
		"allowed_updates": []string{"message"},
	}
	if offset > 0 {
		params["offset"] = offset
	}
	// The HTTP request may take the whole long poll; bound it a little above.
	cctx, cancel := context.WithTimeout(ctx, b.poll+15*time.Second)
	defer cancel()
	var ups []Update
	if err := b.call(cctx, "getUpdates", params, &ups); err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, errors.New("telegram getUpdates: no reply within the long-poll timeout")
		}
		return nil, err
	}
	return ups, nil
}

// Probe checks the bot token and the Bot API with getMe, so a reload
// refuses a wrong token or an unreachable baseUrl before it swaps.
func (b *Bot) Probe(ctx context.Context) error {
	if err := b.call(ctx, "getMe", map[string]any{}, nil); err != nil {
		return fmt.Errorf("bot account check failed (channels.%s.botToken, channels.%s.baseUrl): %w", b.name, b.name, err)
	}
	return nil
}

// Start implements channels.Channel: long-poll getUpdates, advancing the
// offset past every update seen (delivered or ignored) so nothing repeats.
// Errors back off exponentially; a 429 waits exactly retry_after.
func (b *Bot) Start(ctx context.Context, deliver channels.DeliverFunc) error {
	if deliver == nil {
		return errors.New("telegram: Start needs a deliver function")
	}
	var offset int64
	backoff := b.minBackoff
	defer b.setStatus(false, nil)
	for ctx.Err() == nil {
		ups, err := b.getUpdates(ctx, offset)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			wait := backoff
			var ae *APIError
			if errors.As(err, &ae) && ae.RetryAfter > 0 {
				wait = time.Duration(ae.RetryAfter) * time.Second
			} else {
				backoff = min(backoff*2, b.maxBck)
			}
			b.setStatus(false, err)
			b.logf("telegram: poll failed, retrying in %s: %v", wait, err)
			if !sleep(ctx, wait) {
				break
			}
			continue
		}
		backoff = b.minBackoff
		b.setStatus(true, nil)
		for _, u := range ups {
			if u.UpdateID >= offset {
				offset = u.UpdateID + 1
			}
			if in, ok := u.Inbound(b.name); ok {
				deliver(ctx, in)
			}
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// maxSendRetries bounds retries of one sendMessage after 429 or a network error.
const maxSendRetries = 3

// Send implements channels.Channel. Long text is split into several
// messages; a 429 waits retry_after (up to a minute) and tries again.
func (b *Bot) Send(ctx context.Context, chatID, text string) error {
	if strings.TrimSpace(chatID) == "" {
		return errors.New("telegram sendMessage: chat id is empty")
	}
	if strings.TrimSpace(text) == "" {
		return errors.New("telegram sendMessage: text is empty")
	}
	var chat any = chatID
	if n, err := strconv.ParseInt(chatID, 10, 64); err == nil {
		chat = n
	}
	for _, part := range split(text, MaxMessageRunes) {
		if err := b.sendOne(ctx, chat, part); err != nil {
			return err
		}
	}
	return nil
}

func (b *Bot) sendOne(ctx context.Context, chat any, text string) error {
	var err error
	for attempt := 0; attempt <= maxSendRetries; attempt++ {
		var m Message
		err = b.call(ctx, "sendMessage", map[string]any{"chat_id": chat, "text": text}, &m)
		if err == nil {
			return nil
		}
		var ae *APIError
		var te *transportError
		switch {
		case errors.As(err, &ae) && ae.RetryAfter > 0 && ae.RetryAfter <= 60:
			if !sleep(ctx, time.Duration(ae.RetryAfter)*time.Second) {
				return ctx.Err()
			}
		case errors.As(err, &te):
			if !sleep(ctx, b.minBackoff<<attempt) {
				return ctx.Err()
			}
		default:
			return err
		}
	}
	return err
}

// split cuts text into chunks of at most n runes, preferring line breaks.
func split(text string, n int) []string {
	var out []string
	for utf8.RuneCountInString(text) > n {
		cut, count := 0, 0
		for i := range text {
			if count == n {
				cut = i
				break
			}
			count++
		}
		if nl := strings.LastIndexByte(text[:cut], '\n'); nl > cut/2 {
			cut = nl + 1
		}
		out = append(out, text[:cut])
		text = text[cut:]
	}
	return append(out, text)
}
