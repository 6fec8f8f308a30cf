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
	"crypto/sha256"
	"encoding/hex"
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
	"github.com/moltbot/moltbot-secure/gateway/internal/inbox"
)

// DefaultBaseURL is the real Bot API.
const DefaultBaseURL = "https://api.telegram.org"

// MaxMessageRunes is below sendMessage's 4096-character limit, with room for
// characters Telegram counts twice (UTF-16 surrogate pairs).
const MaxMessageRunes = 4000

const maxReplyBytes = 16 << 20

// MaxIdleConns is how many connections to the Bot API stay open between
// calls: above the dispatcher's default worker count, so concurrent replies
// reuse them.
const MaxIdleConns = 64

// Config configures a Bot.
type Config struct {
	Token       string        // required; never logged
	Name        string        // channel name; default "telegram"
	BaseURL     string        // default DefaultBaseURL; tests point it at telegramtest
	HTTPClient  *http.Client  // default: a client with a dial/TLS timeout
	PollTimeout time.Duration // long-poll timeout; default 30 s
	MinBackoff  time.Duration // first retry delay after an error; default 1 s
	MaxBackoff  time.Duration // cap; default 30 s
	// Inbox is the durable inbound queue: an update is confirmed to
	// Telegram (the next offset) only once stored there, and removed when
	// processed. Nil keeps updates in memory only (tests); the gateway
	// always sets it.
	Inbox *inbox.Inbox
	Logf  func(format string, args ...any)
}

// Bot implements channels.Channel for Telegram.
type Bot struct {
	token, name, base  string
	hc                 *http.Client
	poll               time.Duration
	minBackoff, maxBck time.Duration
	logf               func(string, ...any)
	inbox              *inbox.Inbox
	account            string // inbox account: channel name and bot id
	now                func() time.Time

	mu    sync.Mutex
	state channels.State
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
		token: cfg.Token, name: defaultName(cfg.Name), base: strings.TrimRight(cfg.BaseURL, "/"),
		hc: cfg.HTTPClient, poll: cfg.PollTimeout,
		minBackoff: cfg.MinBackoff, maxBck: cfg.MaxBackoff, logf: cfg.Logf,
		inbox: cfg.Inbox, account: inboxAccount(defaultName(cfg.Name), cfg.Token), now: time.Now,
	}
	if b.base == "" {
		b.base = DefaultBaseURL
	}
	if u, err := url.Parse(b.base); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("telegram: base URL %q must be http(s)://host[:port]", cfg.BaseURL)
	}
	if b.hc == nil {
		// Replies go out from every dispatcher worker at once; Go's default
		// of 2 idle connections per host closed the others after each
		// sendMessage, so most replies paid a new TCP (and, against
		// api.telegram.org, TLS) handshake.
		b.hc = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSHandshakeTimeout: 10 * time.Second,
			IdleConnTimeout:     90 * time.Second,
			MaxIdleConns:        MaxIdleConns,
			MaxIdleConnsPerHost: MaxIdleConns,
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

// defaultName is the channel name, "telegram" unless configured.
func defaultName(n string) string {
	if n == "" {
		return "telegram"
	}
	return n
}

// inboxAccount keys a bot's update ids in the inbox: ids count per bot, so
// the bot id (the token's public part before the colon) keeps another
// bot's ids apart. A token without that shape is keyed by a hash: the
// secret part never reaches the disk.
func inboxAccount(name, token string) string {
	id, _, found := strings.Cut(token, ":")
	if _, err := strconv.ParseUint(id, 10, 64); found && err == nil {
		return name + "/" + id
	}
	h := sha256.Sum256([]byte(token))
	return name + "/sha256-" + hex.EncodeToString(h[:8])
}

// Name implements channels.Channel.
func (b *Bot) Name() string { return b.name }

// Status implements channels.Channel.
func (b *Bot) Status() (bool, error) {
	st := b.State()
	return st.Connected, st.Err
}

// State implements channels.StateReporter: connected since the last poll
// Telegram accepted (LastOK); after a failed poll, the error and NextRetry.
func (b *Bot) State() channels.State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

func (b *Bot) polled() {
	b.mu.Lock()
	b.state = channels.State{Connected: true, LastOK: b.now()}
	b.mu.Unlock()
}

func (b *Bot) failed(err error, wait time.Duration) {
	b.mu.Lock()
	b.state = channels.State{Err: err, LastOK: b.state.LastOK, NextRetry: b.now().Add(wait)}
	b.mu.Unlock()
}

func (b *Bot) stopped() {
	b.mu.Lock()
	b.state = channels.State{LastOK: b.state.LastOK}
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
		// The description is the server's text: it reaches status, logs and
		// errors, so the token (a hostile or broken endpoint may echo the
		// URL) and control characters never pass through.
		r.Description = strings.ReplaceAll(r.Description, b.token, "<redacted>")
		return apiError(method, r)
	}
	if out != nil {
		if err := json.Unmarshal(r.Result, out); err != nil {
			return fmt.Errorf("telegram %s: decode result: %w", method, err)
		}
	}
	return nil
}

// getUpdates polls; quick asks for an immediate answer (timeout 0), so the
// first poll after a start or a failure shows at once whether Telegram
// accepts it, instead of after a whole long poll.
func (b *Bot) getUpdates(ctx context.Context, offset int64, quick bool) ([]Update, error) {
	timeout := int(b.poll / time.Second)
	if quick {
		timeout = 0
	}
	params := map[string]any{
		"timeout":         timeout,
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

// Start implements channels.Channel: long-poll getUpdates; store each
// message in the inbox, hand it to deliver, and only then confirm it to
// Telegram (the next poll's offset). Updates stored by an earlier run and
// not processed are delivered first. Errors back off exponentially; a 429
// waits exactly retry_after.
func (b *Bot) Start(ctx context.Context, deliver channels.DeliverFunc) error {
	if deliver == nil {
		return errors.New("telegram: Start needs a deliver function")
	}
	defer b.stopped()
	if err := b.replay(ctx, deliver); err != nil {
		return err
	}
	var offset int64
	backoff := b.minBackoff
	quick := true
	for ctx.Err() == nil {
		ups, err := b.getUpdates(ctx, offset, quick)
		if err == nil {
			b.polled()
			backoff, quick = b.minBackoff, false
			offset, err = b.take(ctx, ups, offset, deliver)
		}
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
			b.failed(err, wait)
			b.logf("telegram: poll failed, retrying in %s: %v", wait, err)
			if !sleep(ctx, wait) {
				break
			}
			quick = true
		}
	}
	return nil
}

// take stores and delivers ups, returning the offset that confirms what
// is stored. The poll's updates are stored together (one write); a store
// failure confirms none of them, so Telegram sends them again.
func (b *Bot) take(ctx context.Context, ups []Update, offset int64, deliver channels.DeliverFunc) (int64, error) {
	var (
		ins   []channels.Inbound
		ids   []int64
		items []inbox.Item
	)
	for _, u := range ups {
		if in, ok := u.Inbound(b.name); ok {
			raw, err := json.Marshal(u)
			if err != nil {
				return offset, fmt.Errorf("telegram: encode update %d: %w", u.UpdateID, err)
			}
			ins, ids = append(ins, in), append(ids, u.UpdateID)
			items = append(items, inbox.Item{ID: u.UpdateID, Payload: raw})
		}
	}
	fresh, err := b.store(items)
	if err != nil {
		return offset, err
	}
	for i, in := range ins {
		if fresh[i] {
			deliver(ctx, in, b.ack(ids[i]))
		} else {
			b.logf("telegram: update %d was already received; dropped the duplicate", ids[i])
		}
	}
	for _, u := range ups {
		if u.UpdateID >= offset {
			offset = u.UpdateID + 1
		}
	}
	return offset, nil
}

// store puts items in the inbox; fresh[i] is false for a duplicate update_id.
func (b *Bot) store(items []inbox.Item) (fresh []bool, err error) {
	if b.inbox == nil {
		fresh = make([]bool, len(items))
		for i := range fresh {
			fresh[i] = true
		}
		return fresh, nil
	}
	fresh, err = b.inbox.PutAll(b.account, items)
	if err != nil {
		return nil, fmt.Errorf("telegram: the inbound queue refused %d update(s), so none is confirmed: %w", len(items), err)
	}
	return fresh, nil
}

// ack finishes an update in the inbox once the pipeline is done with it.
func (b *Bot) ack(id int64) channels.Ack {
	if b.inbox == nil {
		return nil
	}
	return func(handled bool) {
		if !handled {
			b.inbox.Release(b.account, id)
			return
		}
		if err := b.inbox.Done(b.account, id); err != nil {
			b.logf("telegram: %v", err)
		}
	}
}

// replay delivers the updates an earlier run stored and did not finish.
func (b *Bot) replay(ctx context.Context, deliver channels.DeliverFunc) error {
	if b.inbox == nil {
		return nil
	}
	entries, err := b.inbox.Unclaimed(b.account)
	if err != nil {
		return fmt.Errorf("telegram: %w", err)
	}
	for _, e := range entries {
		var u Update
		if json.Unmarshal(e.Payload, &u) == nil {
			if in, ok := u.Inbound(b.name); ok {
				deliver(ctx, in, b.ack(e.ID))
				continue
			}
		}
		b.logf("telegram: stored update %d is unreadable; dropped", e.ID)
		if err := b.inbox.Done(b.account, e.ID); err != nil {
			b.logf("telegram: %v", err)
		}
	}
	if len(entries) > 0 {
		b.logf("telegram: %d stored update(s) from an earlier run handed on", len(entries))
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
