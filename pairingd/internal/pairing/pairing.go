// Package pairing is pairingd's domain: pairing codes for unknown senders and
// the per-channel allowlists they lead to (DESIGN section 5). It never imports
// gRPC; errors are services/errs classes wrapped with context.
package pairing

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/moltbot/moltbot-secure/pairingd/internal/store"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Defaults, as upstream: 1 h codes, 3 pending per channel.
const (
	DefaultTTL            = time.Hour
	DefaultMaxPending     = 3
	DefaultResendInterval = 60 * time.Second
	DefaultMaxFailures    = 10
	DefaultFailureWindow  = 15 * time.Minute
	DefaultLockoutBase    = time.Minute
	DefaultLockoutMax     = 15 * time.Minute
)

// Config holds the dependencies and limits of a Service. Zero limits take the defaults.
type Config struct {
	Store  store.Store  // required
	Logger hclog.Logger // nil: discard
	Now    func() time.Time
	Rand   io.Reader // code randomness; nil: crypto/rand

	TTL            time.Duration
	MaxPending     int
	ResendInterval time.Duration
	MaxFailures    int
	FailureWindow  time.Duration
	LockoutBase    time.Duration
	LockoutMax     time.Duration
	// Channels, when non-empty, is the set of configured channel names; any
	// other name is refused as unknown.
	Channels []string
}

// Service implements pairing. Mutations are serialised by one mutex: they
// are rare (a stranger's first DM, an operator's approve), and it makes
// "at most N pending" and "codes unique" simple to keep.
type Service struct {
	st             store.Store
	log            hclog.Logger
	now            func() time.Time
	rand           io.Reader
	ttl            time.Duration
	maxPending     int
	resendInterval time.Duration
	channels       map[string]bool

	mu         sync.Mutex
	lim        limiter
	fullReplay map[string]time.Time // channel\x00sender -> last queue-full reply
	events     *broker
}

// New builds a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("pairing: Config.Store is nil: %w", errs.ErrInvalidArgument)
	}
	s := &Service{
		st:             cfg.Store,
		log:            cfg.Logger,
		now:            cfg.Now,
		rand:           cfg.Rand,
		ttl:            orDur(cfg.TTL, DefaultTTL),
		maxPending:     cfg.MaxPending,
		resendInterval: orDur(cfg.ResendInterval, DefaultResendInterval),
		fullReplay:     make(map[string]time.Time),
		events:         newBroker(),
		lim: limiter{
			maxFailures: cfg.MaxFailures,
			window:      orDur(cfg.FailureWindow, DefaultFailureWindow),
			base:        orDur(cfg.LockoutBase, DefaultLockoutBase),
			max:         orDur(cfg.LockoutMax, DefaultLockoutMax),
			keys:        make(map[string]*attempts),
		},
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.maxPending <= 0 {
		s.maxPending = DefaultMaxPending
	}
	if s.lim.maxFailures <= 0 {
		s.lim.maxFailures = DefaultMaxFailures
	}
	if s.lim.base > s.lim.max {
		return nil, fmt.Errorf("pairing: LockoutBase %s exceeds LockoutMax %s: %w", s.lim.base, s.lim.max, errs.ErrInvalidArgument)
	}
	if len(cfg.Channels) > 0 {
		s.channels = make(map[string]bool, len(cfg.Channels))
		for _, c := range cfg.Channels {
			if err := ValidateChannel(c); err != nil {
				return nil, fmt.Errorf("pairing: Config.Channels: %w", err)
			}
			s.channels[c] = true
		}
	}
	return s, nil
}

func orDur(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func (s *Service) checkChannel(ch string) error {
	if err := ValidateChannel(ch); err != nil {
		return err
	}
	if s.channels != nil && !s.channels[ch] {
		return fmt.Errorf("channel %q: unknown; configure it under channels.%s first: %w", ch, ch, errs.ErrInvalidArgument)
	}
	return nil
}

// RequestResult is the answer to Request.
type RequestResult struct {
	Code      string // empty when QueueFull
	Created   bool   // false: an existing code was returned (resend)
	QueueFull bool
	ExpiresAt time.Time
	// ResendAllowed is false when this sender was answered less than
	// ResendInterval ago; the caller must not reply again.
	ResendAllowed bool
}

// Request returns the pending code of senderID on channel, creating one when
// the sender has none and the channel's queue has room.
func (s *Service) Request(ctx context.Context, channel, senderID string, meta map[string]string) (RequestResult, error) {
	if err := s.checkChannel(channel); err != nil {
		return RequestResult{}, err
	}
	if err := ValidateSenderID(senderID); err != nil {
		return RequestResult{}, err
	}
	if err := ValidateMeta(meta); err != nil {
		return RequestResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return RequestResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()

	allowed, err := s.st.IsAllowed(channel, senderID)
	if err != nil {
		return RequestResult{}, err
	}
	if allowed {
		return RequestResult{}, fmt.Errorf("sender %q is already allowed on channel %q: %w", senderID, channel, errs.ErrAlreadyExists)
	}
	pending, err := s.livePending(channel, now)
	if err != nil {
		return RequestResult{}, err
	}
	for _, p := range pending {
		if p.SenderID != senderID {
			continue
		}
		res := RequestResult{Code: p.Code, ExpiresAt: p.ExpiresAt}
		if now.Sub(p.LastReplyAt) >= s.resendInterval {
			p.LastReplyAt = now
			if err := s.st.PutPending(p); err != nil {
				return RequestResult{}, err
			}
			res.ResendAllowed = true
		}
		return res, nil
	}
	if len(pending) >= s.maxPending {
		key := channel + "\x00" + senderID
		res := RequestResult{QueueFull: true}
		if last, ok := s.fullReplay[key]; !ok || now.Sub(last) >= s.resendInterval {
			s.pruneFullReplay(now)
			s.fullReplay[key] = now
			res.ResendAllowed = true
			// One event per reply, so a spamming stranger cannot flood watchers.
			s.events.publish(Event{Kind: EventQueueFull, At: now, Request: store.Pending{
				Channel: channel, SenderID: senderID, Meta: copyMeta(meta), CreatedAt: now,
			}})
			s.log.Info("pairing queue full", "channel", channel, "pending", len(pending))
		}
		return res, nil
	}
	code, err := s.newCode(pending)
	if err != nil {
		return RequestResult{}, err
	}
	p := store.Pending{
		Channel: channel, SenderID: senderID, Code: code, Meta: copyMeta(meta),
		CreatedAt: now, ExpiresAt: now.Add(s.ttl), LastReplyAt: now,
	}
	if err := s.st.PutPending(p); err != nil {
		return RequestResult{}, err
	}
	delete(s.fullReplay, channel+"\x00"+senderID)
	s.events.publish(Event{Kind: EventRequested, Request: p, At: now})
	s.log.Info("pairing requested", "channel", channel)
	return RequestResult{Code: code, Created: true, ExpiresAt: p.ExpiresAt, ResendAllowed: true}, nil
}

func (s *Service) pruneFullReplay(now time.Time) {
	if len(s.fullReplay) < 1024 {
		return
	}
	for k, t := range s.fullReplay {
		if now.Sub(t) >= s.resendInterval {
			delete(s.fullReplay, k)
		}
	}
}

func copyMeta(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// newCode draws a code unique among the channel's pending codes (the only
// ones Approve compares against).
func (s *Service) newCode(pending []store.Pending) (string, error) {
	var buf [CodeLength]byte
	for attempt := 0; attempt < 100; attempt++ {
		if _, err := io.ReadFull(s.rand, buf[:]); err != nil {
			return "", fmt.Errorf("read randomness for pairing code: %w", err)
		}
		for i := range buf {
			buf[i] = Alphabet[buf[i]&31]
		}
		code := string(buf[:])
		dup := false
		for _, p := range pending {
			if p.Code == code {
				dup = true
			}
		}
		if !dup {
			return code, nil
		}
	}
	return "", fmt.Errorf("could not draw a unique pairing code (is the random source broken?)")
}

// livePending lists a channel's pending requests ("" = all), deleting and
// announcing expired ones. Caller holds s.mu.
func (s *Service) livePending(channel string, now time.Time) ([]store.Pending, error) {
	all, err := s.st.ListPending(channel)
	if err != nil {
		return nil, err
	}
	live := all[:0]
	expired := map[string][]string{}
	var gone []store.Pending
	for _, p := range all {
		if !now.Before(p.ExpiresAt) {
			expired[p.Channel] = append(expired[p.Channel], p.SenderID)
			gone = append(gone, p)
			continue
		}
		live = append(live, p)
	}
	for ch, ids := range expired {
		if err := s.st.DeletePending(ch, ids...); err != nil {
			return nil, err
		}
	}
	for _, p := range gone {
		s.events.publish(Event{Kind: EventExpired, Request: p, At: now})
	}
	return live, nil
}

// match finds the pending request whose code equals code, comparing against
// every candidate in constant time so timing reveals neither the code nor
// which request matched.
func match(pending []store.Pending, code string) int {
	idx := -1
	for i, p := range pending {
		if subtle.ConstantTimeCompare([]byte(p.Code), []byte(code)) == 1 {
			idx = i
		}
	}
	return idx
}

// takeByCode resolves code on channel for the caller, counting a miss against
// callerKey. Caller holds s.mu.
func (s *Service) takeByCode(callerKey, channel, code string, now time.Time) (store.Pending, error) {
	if err := s.lim.check(callerKey, now); err != nil {
		return store.Pending{}, err
	}
	pending, err := s.livePending(channel, now)
	if err != nil {
		return store.Pending{}, err
	}
	i := match(pending, code)
	if i < 0 {
		if s.lim.fail(callerKey, now) {
			s.log.Warn("pairing lockout engaged", "caller", callerKey)
		}
		return store.Pending{}, fmt.Errorf("no pending pairing request with that code on channel %q (codes expire after %s; see `moltbot pairing list`): %w", channel, s.ttl, errs.ErrNotFound)
	}
	return pending[i], nil
}

// ApproveResult names the sender that was added to the allowlist.
type ApproveResult struct {
	SenderID string
	Meta     map[string]string
}

// Approve moves the sender behind code to the channel's allowlist. callerKey
// identifies who is guessing (the verified peer identity) for the lockout.
func (s *Service) Approve(ctx context.Context, callerKey, channel, code string) (ApproveResult, error) {
	if err := s.checkChannel(channel); err != nil {
		return ApproveResult{}, err
	}
	c, err := NormalizeCode(code)
	if err != nil {
		return ApproveResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return ApproveResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	p, err := s.takeByCode(callerKey, channel, c, now)
	if err != nil {
		return ApproveResult{}, err
	}
	if _, err := s.st.Promote(channel, p.SenderID, now); err != nil {
		return ApproveResult{}, err
	}
	s.lim.succeed(callerKey)
	s.events.publish(Event{Kind: EventApproved, Request: p, At: now})
	s.log.Info("pairing approved", "channel", channel, "caller", callerKey)
	return ApproveResult{SenderID: p.SenderID, Meta: copyMeta(p.Meta)}, nil
}

// Reject drops the pending request behind code and returns its sender.
// Wrong codes count toward the lockout as for Approve.
func (s *Service) Reject(ctx context.Context, callerKey, channel, code string) (string, error) {
	if err := s.checkChannel(channel); err != nil {
		return "", err
	}
	c, err := NormalizeCode(code)
	if err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	p, err := s.takeByCode(callerKey, channel, c, now)
	if err != nil {
		return "", err
	}
	if err := s.st.DeletePending(channel, p.SenderID); err != nil {
		return "", err
	}
	s.lim.succeed(callerKey)
	s.events.publish(Event{Kind: EventRejected, Request: p, At: now})
	s.log.Info("pairing rejected", "channel", channel, "caller", callerKey)
	return p.SenderID, nil
}

// Revoke removes senderID from the channel's allowlist (errs.ErrNotFound when absent).
func (s *Service) Revoke(ctx context.Context, channel, senderID string) error {
	if err := s.checkChannel(channel); err != nil {
		return err
	}
	if err := ValidateSenderID(senderID); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.st.RemoveAllowed(channel, senderID); err != nil {
		return err
	}
	now := s.now()
	s.events.publish(Event{Kind: EventRevoked, At: now, Request: store.Pending{Channel: channel, SenderID: senderID}})
	s.log.Info("pairing revoked", "channel", channel)
	return nil
}

// IsAllowed reports whether senderID is on the channel's allowlist. It reads
// without the service lock (bbolt readers run concurrently), since the
// gateway asks on every inbound message.
func (s *Service) IsAllowed(ctx context.Context, channel, senderID string) (bool, error) {
	if err := s.checkChannel(channel); err != nil {
		return false, err
	}
	if err := ValidateSenderID(senderID); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return s.st.IsAllowed(channel, senderID)
}

// List returns the live pending requests of channel ("" = all), oldest
// first, and the channels whose queue is full.
func (s *Service) List(ctx context.Context, channel string) ([]store.Pending, []string, error) {
	if channel != "" {
		if err := s.checkChannel(channel); err != nil {
			return nil, nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	live, err := s.livePending(channel, s.now())
	if err != nil {
		return nil, nil, err
	}
	counts := map[string]int{}
	for _, p := range live {
		counts[p.Channel]++
	}
	var full []string
	for ch, n := range counts {
		if n >= s.maxPending {
			full = append(full, ch)
		}
	}
	sort.Strings(full)
	return live, full, nil
}

// ListAllowed returns the allowlist of channel ("" = all).
func (s *Service) ListAllowed(ctx context.Context, channel string) ([]store.Allowed, error) {
	if channel != "" {
		if err := s.checkChannel(channel); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.st.ListAllowed(channel)
}

// Watch subscribes to events of channel ("" = all) with a buffer of buf
// events (<= 0: DefaultWatchBuffer). A subscriber whose buffer fills is
// dropped rather than slowing the service. The caller must Close it.
func (s *Service) Watch(channel string, buf int) (*Subscription, error) {
	if channel != "" {
		if err := s.checkChannel(channel); err != nil {
			return nil, err
		}
	}
	return s.events.subscribe(channel, buf), nil
}

// IsLocked reports whether err is a lockout, and for how long.
func IsLocked(err error) (time.Duration, bool) {
	var le *LockedError
	if errors.As(err, &le) {
		return le.RetryAfter, true
	}
	return 0, false
}
