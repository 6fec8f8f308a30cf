package seclog

import (
	"context"
	"sync"
	"time"

	"github.com/moltbot/moltbot-secure/services/auth"
)

// Decision builds an event for a decision taken on behalf of the caller in
// ctx (the authenticated identity and address, when there is one).
func Decision(ctx context.Context, kind, target string, fields map[string]string) Event {
	ev := Event{Kind: kind, Target: target, Fields: fields}
	if c, ok := auth.CallerFrom(ctx); ok {
		ev.Actor, ev.Addr = c.ID, c.Addr
		if ev.Actor == "" {
			ev.Actor = c.CertID
		}
	}
	return ev
}

// Put records ev with r when r is set; packages whose Recorder is optional
// call it so a nil one is no special case. The error is Record's.
func Put(r Recorder, ev Event) error {
	if r == nil {
		return nil
	}
	return r.Record(ev)
}

// repeatEvery is how often one repeated decision (the same key) is
// written as a decision; the repeats in between are noise.
const repeatEvery = time.Minute

// repeats remembers when each key was last written as a decision.
type repeats struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// first reports whether key was not written as a decision in repeatEvery.
func (r *repeats) first(key string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.last[key]; ok && now.Sub(t) < repeatEvery {
		return false
	}
	if r.last == nil || len(r.last) >= 4096 { // bounded: forget old keys rather than grow
		r.last = map[string]time.Time{}
	}
	r.last[key] = now
	return true
}

// RecordRepeat is Record for a decision an attacker can make repeat at
// will (a lockout answering every further guess): the first for key in a
// minute is written at once, the rest are noted (and may be shed and
// counted), so a flood cannot make the gateway fsync per request.
func (l *Log) RecordRepeat(key string, ev Event) error {
	if l == nil {
		return l.Record(ev)
	}
	if !l.rep.first(key, l.now()) {
		l.Note(ev)
		return nil
	}
	return l.Record(ev)
}

// AuthRecorder returns the auth interceptor's OnEvent for l: successes and
// failures are noise (queued, may be shed and counted); a lockout is a
// decision, written at once, once a minute per address and certificate.
func AuthRecorder(l *Log) func(context.Context, auth.Event) {
	return func(_ context.Context, ev auth.Event) {
		e := Event{Kind: ev.Kind, Actor: ev.ID, Addr: ev.Addr, Target: ev.Method}
		if e.Actor == "" {
			e.Actor = ev.CertID
		}
		if ev.Kind != "auth.lockout" {
			l.Note(e)
			return
		}
		_ = l.RecordRepeat("auth.lockout|"+ev.Addr+"|"+ev.CertID, e)
	}
}

// TokenRotated records a gateway token rotation (auth.GatewayToken.OnSwap).
func TokenRotated(l *Log) func(gen uint64) {
	return func(uint64) { _ = l.Record(Event{Kind: "token.rotate", Actor: auth.IDGateway}) }
}
