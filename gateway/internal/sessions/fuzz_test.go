package sessions

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzOpen reads arbitrary bytes as the sessions file. Whatever the bytes:
// no panic; a refusal names the file; an accepted file can be written back
// (the next Touch) and read again with every session kept.
func FuzzOpen(f *testing.F) {
	f.Add([]byte(`{"version":1,"sessions":[{"key":"agent:main:main","agentId":"main","channel":"local","main":true,"lastActiveAt":"2026-01-02T03:04:05Z"}]}`))
	f.Add([]byte(`{"version":1,"sessions":[{"key":"agent:main:telegram:dm:42","lastActiveAt":"9999-12-31T23:59:59Z","sandboxed":true,"profile":"x"}]}`))
	f.Add([]byte(`{"version":0}`))
	f.Add([]byte(`{"version":1,"sessions":[{"key":"a"},{"key":"a"},{"key":""}]}`))
	f.Add([]byte(`{"version": 1, "sessions": ` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "sessions", "sessions.json")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		now := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
		s, err := Open(path, now)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("refusal does not name the file: %v", err)
			}
			return
		}
		before := len(s.List())
		if err := s.Touch(Session{Key: "fuzz:new:session", AgentID: "main", Channel: "local"}); err != nil {
			t.Fatalf("an index Open accepted cannot be written back: %v", err)
		}
		again, err := Open(path, now)
		if err != nil {
			t.Fatalf("the index written back does not open: %v", err)
		}
		want := len(s.List()) // before, plus the new key unless the file had it
		if want != before && want != before+1 {
			t.Fatalf("Touch of one session went from %d to %d sessions", before, want)
		}
		if got := len(again.List()); got != want {
			t.Fatalf("%d sessions after the round trip, want %d", got, want)
		}
	})
}
