// Package local is the "local" channel: messages come in through the
// gateway's Send RPC (`moltbot message send --channel local --from alice
// "hi"`) and the bot's replies go back in the RPC's answer. It is used by
// tests and demos, and needs no outside service.
package local

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/moltbot/moltbot-secure/gateway/internal/channels"
	"github.com/moltbot/moltbot-secure/services/errs"
	"github.com/moltbot/moltbot-secure/services/textsafe"
)

// Name is the channel's config key.
const Name = "local"

// Mailbox bounds: replies sent to a chat while no Inject is waiting (e.g.
// the approval notice from `pairing approve`) wait here for Drain.
const (
	maxMailboxPerChat = 100
	maxMailboxChats   = 1000
)

// Channel implements channels.Channel for local messages.
type Channel struct {
	mu         sync.Mutex
	deliver    channels.DeliverFunc
	collectors map[string][]*collector
	mailbox    map[string][]string
	nextID     uint64
	running    chan struct{} // closed once Start accepts Inject
}

type collector struct{ replies []string }

// collectorKey marks a message's context with its Inject's collector, so
// a reply made while processing that message goes to that Inject alone,
// not to an earlier or later message of the same chat waiting in its queue.
type collectorKey struct{}

var _ channels.Channel = (*Channel)(nil)

// New returns a local channel; it accepts Inject once Start runs.
func New() *Channel {
	return &Channel{collectors: map[string][]*collector{}, mailbox: map[string][]string{}, running: make(chan struct{})}
}

// Name implements channels.Channel.
func (c *Channel) Name() string { return Name }

// Start implements channels.Channel: it records deliver and blocks until ctx ends.
func (c *Channel) Start(ctx context.Context, deliver channels.DeliverFunc) error {
	if deliver == nil {
		return fmt.Errorf("local channel: Start needs a deliver function")
	}
	c.mu.Lock()
	c.deliver = deliver
	select {
	case <-c.running:
	default:
		close(c.running)
	}
	c.mu.Unlock()
	<-ctx.Done()
	c.mu.Lock()
	c.deliver = nil
	c.mu.Unlock()
	return nil
}

// Running is closed once Start accepts Inject (a reload swaps a runtime
// in only after its local channel runs).
func (c *Channel) Running() <-chan struct{} { return c.running }

// Status implements channels.Channel: connected while started.
func (c *Channel) Status() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deliver != nil, nil
}

// Send implements channels.Channel. A reply made while processing an
// injected message goes to that Inject; any other reply goes to every
// Inject waiting on chatID, and with none waiting it is kept for Drain.
func (c *Channel) Send(ctx context.Context, chatID, text string) error {
	if chatID == "" {
		return fmt.Errorf("local send: chat id is empty: %w", errs.ErrInvalidArgument)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if own, ok := ctx.Value(collectorKey{}).(*collector); ok {
		for _, col := range c.collectors[chatID] {
			if col == own {
				col.replies = append(col.replies, text)
				return nil
			}
		}
	}
	if cs := c.collectors[chatID]; len(cs) > 0 {
		for _, col := range cs {
			col.replies = append(col.replies, text)
		}
		return nil
	}
	box := c.mailbox[chatID]
	if box == nil && len(c.mailbox) >= maxMailboxChats {
		return fmt.Errorf("local send: %d chats have undrained replies: %w", maxMailboxChats, errs.ErrResourceExhausted)
	}
	if len(box) >= maxMailboxPerChat {
		box = box[1:] // oldest first out: a demo mailbox, not a queue
	}
	c.mailbox[chatID] = append(box, text)
	return nil
}

// Drain returns and forgets the replies kept for chatID.
func (c *Channel) Drain(chatID string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.mailbox[chatID]
	delete(c.mailbox, chatID)
	return out
}

// Inject runs one inbound message through the pipeline, waits until it is
// processed (behind earlier messages of its session) and returns the replies the bot sent to its chat meanwhile. Channel is forced
// to "local"; ChatID defaults to SenderID (a DM); MessageID is assigned
// when empty. Errors: errs.ErrInvalidArgument for a missing sender,
// errs.ErrUnavailable when the channel is not started.
func (c *Channel) Inject(ctx context.Context, in channels.Inbound) ([]string, error) {
	if strings.TrimSpace(in.SenderID) == "" {
		return nil, fmt.Errorf("from: the sender is empty; pass --from <name>: %w", errs.ErrInvalidArgument)
	}
	// Ids key allowlists and sessions: refused when unsafe; names are
	// only shown: neutralised (textsafe).
	for _, f := range []struct{ name, v string }{{"from (sender id)", in.SenderID}, {"chat id", in.ChatID}, {"group id", in.GroupID}} {
		if err := textsafe.CheckID(f.name, f.v); err != nil {
			return nil, err
		}
	}
	if len(in.Meta) > 0 {
		meta := make(map[string]string, len(in.Meta))
		for k, v := range in.Meta {
			meta[textsafe.Neutralize(k, 32)] = textsafe.Neutralize(v, 128)
		}
		in.Meta = meta
	}
	in.Channel = Name
	if in.ChatID == "" {
		in.ChatID = in.SenderID
		if in.GroupID != "" {
			in.ChatID = in.GroupID
		}
	}
	col := &collector{}
	c.mu.Lock()
	deliver := c.deliver
	if deliver == nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("local channel is not running (channels.local disabled?): %w", errs.ErrUnavailable)
	}
	if in.MessageID == "" {
		c.nextID++
		in.MessageID = "local-" + strconv.FormatUint(c.nextID, 10)
	}
	c.collectors[in.ChatID] = append(c.collectors[in.ChatID], col)
	c.mu.Unlock()

	defer func() {
		c.mu.Lock()
		cs := c.collectors[in.ChatID]
		for i, x := range cs {
			if x == col {
				cs = append(cs[:i], cs[i+1:]...)
				break
			}
		}
		if len(cs) == 0 {
			delete(c.collectors, in.ChatID)
		} else {
			c.collectors[in.ChatID] = cs
		}
		c.mu.Unlock()
	}()
	handled := make(chan bool, 1)
	deliver(context.WithValue(ctx, collectorKey{}, col), in, func(h bool) { handled <- h })
	select {
	case h := <-handled:
		if !h {
			return nil, fmt.Errorf("local channel is stopping; the message was not processed, send it again: %w", errs.ErrUnavailable)
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), col.replies...), nil
}

// Adopt moves the replies old keeps for Drain into c (a reload replaced
// the runtime old belonged to), so an approval notice is not lost.
func (c *Channel) Adopt(old *Channel) {
	if old == nil || old == c {
		return
	}
	old.mu.Lock()
	box := old.mailbox
	old.mailbox = map[string][]string{}
	old.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	for chat, msgs := range box {
		if _, ok := c.mailbox[chat]; !ok && len(c.mailbox) >= maxMailboxChats {
			continue
		}
		c.mailbox[chat] = append(msgs, c.mailbox[chat]...)
	}
}
