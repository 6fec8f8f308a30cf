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

// lockoutEvery is how often one address's lockout is recorded as a
// decision; the repeats while it lasts are noise.
const lockoutEvery = time.Minute

// AuthRecorder returns the auth interceptor's OnEvent for l: successes and
// failures are noise (queued, may be shed and counted); the start of a
// lockout is a decision, written at once, and its repeats within a minute
// are noise, so a locked-out caller cannot make the gateway fsync per call.
func AuthRecorder(l *Log) func(context.Context, auth.Event) {
	var mu sync.Mutex
	last := map[string]time.Time{}
	return func(_ context.Context, ev auth.Event) {
		e := Event{Kind: ev.Kind, Actor: ev.ID, Addr: ev.Addr, Target: ev.Method}
		if e.Actor == "" {
			e.Actor = ev.CertID
		}
		if ev.Kind != "auth.lockout" {
			l.Note(e)
			return
		}
		k := ev.Addr + "|" + ev.CertID
		now := l.now()
		mu.Lock()
		t, seen := last[k]
		first := !seen || now.Sub(t) >= lockoutEvery
		if first {
			if len(last) >= 4096 { // bounded: forget old lockouts rather than grow
				clear(last)
			}
			last[k] = now
		}
		mu.Unlock()
		if !first {
			l.Note(e)
			return
		}
		_ = l.Record(e)
	}
}

// TokenRotated records a gateway token rotation (auth.GatewayToken.OnSwap).
func TokenRotated(l *Log) func(gen uint64) {
	return func(uint64) { _ = l.Record(Event{Kind: "token.rotate", Actor: auth.IDGateway}) }
}
