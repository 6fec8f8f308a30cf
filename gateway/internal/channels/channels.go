// Package channels is the gateway's message ingress: a small Channel
// interface with one adapter per chat network (telegram, local).
package channels

import (
	"context"
	"time"
)

// Inbound is one message from a chat network, already reduced to what the
// gateway needs. GroupID is empty for a direct message.
type Inbound struct {
	Channel   string // channel name, e.g. "telegram"
	SenderID  string // stable id of the sender on that network
	ChatID    string // where replies go
	GroupID   string // group/supergroup id; "" for a DM
	Text      string
	MessageID string
	// Meta describes the sender for the operator (username, name); untrusted.
	Meta map[string]string
}

// IsDM reports whether the message is a direct message.
func (in Inbound) IsDM() bool { return in.GroupID == "" }

// Ack reports what became of a delivered message: handled is true once it
// is finished (answered, refused, or failed for good, "busy" included), and
// false when it was not processed (the gateway is stopping), so a durable
// adapter offers it again after a restart.
type Ack = func(handled bool)

// DeliverFunc hands an inbound message to the gateway pipeline. Adapters
// call it in order, one message at a time; it queues the message on its
// session's queue and returns at once. ack (may be nil) is called exactly
// once, later, from another goroutine.
type DeliverFunc = func(ctx context.Context, in Inbound, ack Ack)

// State is a channel's state as `status --all` shows it.
type State struct {
	Connected bool
	Err       error     // the last failure, cleared by a success; never holds a secret
	LastOK    time.Time // last successful exchange with the network (a poll); zero: none yet
	NextRetry time.Time // after a failure: when the adapter tries again
}

// StateReporter is a Channel that reports more than Status (times).
type StateReporter interface {
	State() State
}

// Channel is one chat network.
type Channel interface {
	// Name is the channel's config key ("telegram", "local").
	Name() string
	// Start receives messages and calls deliver for each until ctx is done;
	// it returns nil on cancellation and an error only when it cannot run.
	Start(ctx context.Context, deliver DeliverFunc) error
	// Send posts text to a chat.
	Send(ctx context.Context, chatID, text string) error
	// Status reports whether the channel is connected, and its last error.
	Status() (connected bool, err error)
}
