package pairing

import (
	"sync"
	"time"

	"github.com/moltbot/moltbot-secure/pairingd/internal/store"
)

// EventKind says what happened to a pairing request.
type EventKind int

// Event kinds, matching pairingv1.WatchResponse_Kind.
const (
	EventRequested EventKind = iota + 1
	EventQueueFull
	EventApproved
	EventRejected
	EventRevoked
	EventExpired
)

func (k EventKind) String() string {
	switch k {
	case EventRequested:
		return "requested"
	case EventQueueFull:
		return "queue_full"
	case EventApproved:
		return "approved"
	case EventRejected:
		return "rejected"
	case EventRevoked:
		return "revoked"
	case EventExpired:
		return "expired"
	}
	return "unknown"
}

// Event is one pairing event. For EventQueueFull, Request carries the sender
// that was turned away (no code); for EventRevoked only Channel and SenderID.
type Event struct {
	Kind    EventKind
	Request store.Pending
	At      time.Time
}

// DefaultWatchBuffer is the per-subscriber buffer: pairing events are rare, so
// a watcher that falls this far behind is stuck, not busy.
const DefaultWatchBuffer = 64

// Subscription receives events until Close, or until it is dropped for being
// too slow (then C is closed and Dropped reports true).
type Subscription struct {
	b       *broker
	channel string
	ch      chan Event
	mu      sync.Mutex
	dropped bool
	closed  bool
}

// C is the event stream; it is closed when the subscription ends.
func (s *Subscription) C() <-chan Event { return s.ch }

// Dropped reports whether the subscription was ended because its buffer filled.
func (s *Subscription) Dropped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Close ends the subscription. Safe to call more than once.
func (s *Subscription) Close() { s.b.remove(s, false) }

type broker struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

func newBroker() *broker { return &broker{subs: make(map[*Subscription]struct{})} }

func (b *broker) subscribe(channel string, buf int) *Subscription {
	if buf <= 0 {
		buf = DefaultWatchBuffer
	}
	s := &Subscription{b: b, channel: channel, ch: make(chan Event, buf)}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

func (b *broker) remove(s *Subscription, dropped bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.dropped = dropped
	delete(b.subs, s)
	close(s.ch)
}

// publish never blocks: the store's callers must not wait on a watcher.
func (b *broker) publish(ev Event) {
	b.mu.Lock()
	var slow []*Subscription
	for s := range b.subs {
		if s.channel != "" && s.channel != ev.Request.Channel {
			continue
		}
		select {
		case s.ch <- ev:
		default:
			slow = append(slow, s)
		}
	}
	b.mu.Unlock()
	for _, s := range slow {
		b.remove(s, true)
	}
}
