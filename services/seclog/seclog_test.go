package seclog

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moltbot/moltbot-secure/services/auth"
)

func newKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

func write(t *testing.T, dir string, key []byte, n int) {
	t.Helper()
	l, err := Open(dir, key)
	require.NoError(t, err)
	for i := 0; i < n; i++ {
		require.NoError(t, l.Record(Event{Kind: "pairing.approve", Addr: "10.0.0.1", Fields: map[string]string{"i": string(rune('a' + i%26))}}))
	}
	require.NoError(t, l.Close())
}

func readLines(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, LogFile))
	require.NoError(t, err)
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func writeLines(t *testing.T, dir string, lines []string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, LogFile), []byte(strings.Join(lines, "\n")+"\n"), 0o600))
}

// reseal recomputes the whole chain and head from line i on under key, as
// an attacker who rewrote line i would (with a key of his own: he cannot
// unseal ours).
func reseal(t *testing.T, key []byte, lines []string, from int) ([]string, []byte) {
	t.Helper()
	l := &Log{key: key}
	prev := genesis
	if from > 0 {
		_, prev, _ = splitMAC([]byte(lines[from-1]))
	}
	for i := from; i < len(lines); i++ {
		body, _, ok := splitMAC([]byte(lines[i]))
		require.True(t, ok)
		var ln Line
		require.NoError(t, json.Unmarshal(body, &ln))
		ln.Prev = prev
		b, err := l.seal(ln)
		require.NoError(t, err)
		lines[i] = string(b)
		_, prev, _ = splitMAC(b)
	}
	hb, err := json.Marshal(head{Seq: uint64(len(lines)), Hash: prev, MAC: headMAC(key, uint64(len(lines)), prev)})
	require.NoError(t, err)
	return lines, hb
}

func TestChainVerifiesAndSurvivesReopen(t *testing.T) {
	dir, key := t.TempDir(), newKey(t)
	write(t, dir, key, 5)
	write(t, dir, key, 5) // reopen continues the chain
	n, err := Verify(dir, key, nil)
	require.NoError(t, err)
	require.Equal(t, 10, n)
	for _, f := range []string{LogFile, HeadFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), f)
	}
	for _, ln := range readLines(t, dir) {
		require.Regexp(t, `,"mac":"[0-9a-f]{64}"}$`, ln)
	}
}

func TestTamperingIsDetectedAndNamed(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, dir string, lines []string)
		line   int    // the line named; 0 = the head file
		reason string // part of the reason
	}{
		{"edit a middle line", func(t *testing.T, dir string, l []string) {
			l[3] = strings.Replace(l[3], "10.0.0.1", "10.0.0.9", 1)
			writeLines(t, dir, l)
		}, 4, "MAC does not match"},
		{"rewrite a line and recompute the chain and head without the key", func(t *testing.T, dir string, l []string) {
			l[3] = strings.Replace(l[3], "10.0.0.1", "10.0.0.9", 1)
			l, hb := reseal(t, newKey(t), l, 3)
			writeLines(t, dir, l)
			require.NoError(t, os.WriteFile(filepath.Join(dir, HeadFile), hb, 0o600))
		}, 4, "MAC does not match"},
		{"rewrite a line and recompute an unkeyed SHA-256 chain (the old format)", func(t *testing.T, dir string, l []string) {
			prev := genesis
			for i := range l {
				body, _, _ := splitMAC([]byte(l[i]))
				var ln Line
				require.NoError(t, json.Unmarshal(body, &ln))
				ln.Prev = prev
				if i == 3 {
					ln.Addr = "10.0.0.9"
				}
				b, _ := json.Marshal(ln)
				s := sha256.Sum256(b)
				prev, l[i] = hex.EncodeToString(s[:]), string(b)
			}
			writeLines(t, dir, l)
		}, 1, "no MAC"},
		{"remove a middle line", func(t *testing.T, dir string, l []string) {
			writeLines(t, dir, append(l[:3], l[4:]...))
		}, 4, "removed or reordered"},
		{"swap two lines", func(t *testing.T, dir string, l []string) {
			l[3], l[4] = l[4], l[3]
			writeLines(t, dir, l)
		}, 4, "removed or reordered"},
		{"edit the last line", func(t *testing.T, dir string, l []string) {
			l[9] = strings.Replace(l[9], "10.0.0.1", "10.0.0.9", 1)
			writeLines(t, dir, l)
		}, 10, "MAC does not match"},
		{"cut the tail, head kept", func(t *testing.T, dir string, l []string) {
			writeLines(t, dir, l[:7])
		}, 8, "removed from the end"},
		{"cut the tail and rewrite the head from a known MAC", func(t *testing.T, dir string, l []string) {
			// Line 8's prev is line 7's MAC: all an attacker needs for the
			// hash, but the head's own MAC needs the key.
			writeLines(t, dir, l[:7])
			body, _, _ := splitMAC([]byte(l[7]))
			var ln Line
			require.NoError(t, json.Unmarshal(body, &ln))
			hb, _ := json.Marshal(head{Seq: 7, Hash: ln.Prev, MAC: headMAC(newKey(t), 7, ln.Prev)})
			require.NoError(t, os.WriteFile(filepath.Join(dir, HeadFile), hb, 0o600))
		}, 0, "head file MAC does not match"},
		{"cut the tail and delete the head", func(t *testing.T, dir string, l []string) {
			writeLines(t, dir, l[:7])
			require.NoError(t, os.Remove(filepath.Join(dir, HeadFile)))
		}, 0, "head file missing"},
		{"head file garbage", func(t *testing.T, dir string, l []string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, HeadFile), []byte("{"), 0o600))
		}, 0, "not valid JSON"},
		{"append a forged line chained to the head's hash", func(t *testing.T, dir string, l []string) {
			hb, err := os.ReadFile(filepath.Join(dir, HeadFile))
			require.NoError(t, err)
			var h head
			require.NoError(t, json.Unmarshal(hb, &h))
			forged := fmt.Sprintf(`{"seq":11,"ts":"2026-01-01T00:00:00Z","kind":"config.set","prev":"%s","mac":"%s"}`, h.Hash, strings.Repeat("ab", 32))
			writeLines(t, dir, append(l, forged))
		}, 11, "MAC does not match"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, key := t.TempDir(), newKey(t)
			write(t, dir, key, 10)
			tc.mutate(t, dir, readLines(t, dir))
			_, err := Verify(dir, key, nil)
			var ve *VerifyError
			require.True(t, errors.As(err, &ve), "err: %v", err)
			require.Equal(t, tc.line, ve.Line, ve.Error())
			require.Contains(t, ve.Error(), tc.reason)
		})
	}
}

func TestWrongKeyFailsAtLineOne(t *testing.T) {
	dir, key := t.TempDir(), newKey(t)
	write(t, dir, key, 3)
	_, err := Verify(dir, newKey(t), nil)
	var ve *VerifyError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, 1, ve.Line)
	require.Contains(t, ve.Reason, "another key")
	_, err = Verify(dir, key[:16], nil)
	require.ErrorContains(t, err, "want 32")
}

// An unkeyed log from an older version is kept, readable, beside the new
// keyed chain, whose first line names it; it is never verified as keyed.
func TestUnkeyedLogIsArchivedNotTrusted(t *testing.T) {
	dir, key := t.TempDir(), newKey(t)
	prev := genesis
	var old []string
	for i := 1; i <= 3; i++ {
		b, _ := json.Marshal(Line{Seq: uint64(i), Time: time.Now().UTC(), Event: Event{Kind: "auth.failure"}, Prev: prev})
		s := sha256.Sum256(b)
		prev = hex.EncodeToString(s[:])
		old = append(old, string(b))
	}
	writeLines(t, dir, old)
	oldBytes, err := os.ReadFile(filepath.Join(dir, LogFile))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, HeadFile), []byte(`{"seq":3,"hash":"`+prev+`"}`), 0o600))

	// Under a key that already existed, an unkeyed log is a rewrite.
	other := t.TempDir()
	writeLines(t, other, old)
	lo, err := Open(other, key)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(lo.Archived(), LogFile+".unverified-"), lo.Archived())
	require.NoError(t, lo.Close())

	l, err := OpenUpgrade(dir, key)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(l.Archived(), LogFile+".unkeyed-"), l.Archived())
	require.NoError(t, l.Record(Event{Kind: "config.set", Target: "x"}))
	require.NoError(t, l.Close())

	kept, err := os.ReadFile(filepath.Join(dir, l.Archived()))
	require.NoError(t, err)
	require.Equal(t, oldBytes, kept)
	var kinds []string
	n, err := Verify(dir, key, func(_ int, raw string) {
		var ln Line
		body, _, _ := splitMAC([]byte(raw))
		require.NoError(t, json.Unmarshal(body, &ln))
		kinds = append(kinds, ln.Kind)
		if ln.Kind == "log.keyed" {
			require.Equal(t, l.Archived(), ln.Fields["archived"])
		}
	})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, []string{"log.keyed", "config.set"}, kinds)
}

// A keyed log that no longer verifies (edited, or the key was lost) is
// never continued: it is archived and the new chain says why.
func TestUnverifiedLogIsArchivedAtOpen(t *testing.T) {
	dir, key := t.TempDir(), newKey(t)
	write(t, dir, key, 3)
	l, err := Open(dir, newKey(t)) // a new key: the old chain cannot verify
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(l.Archived(), LogFile+".unverified-"), l.Archived())
	var first string
	n, err := l.Verify(func(i int, raw string) {
		if i == 1 {
			first = raw
		}
	})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Contains(t, first, `"kind":"log.archived"`)
	require.Contains(t, first, "line 1")
	// The operator's verify keeps failing on that history, naming the archive.
	_, err = l.VerifyHistory(nil)
	var ve *VerifyError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, 1, ve.Line)
	require.Contains(t, ve.Reason, l.Archived())
	require.NoError(t, l.Close())
}

// Decisions are written even while the noise queue is full and its writer
// stalled; the shed noise is counted and the count recorded.
func TestDecisionsSurviveAFullQueue(t *testing.T) {
	dir, key := t.TempDir(), newKey(t)
	l, err := open(dir, key, false, 4, false) // no writer yet: the queue fills
	require.NoError(t, err)
	for i := 0; i < 10; i++ {
		l.Note(Event{Kind: "auth.failure", Addr: "10.0.0.2"})
	}
	require.Equal(t, 4, len(l.queue))
	require.NoError(t, l.Record(Event{Kind: "pairing.reject", Target: "telegram:ABCD2345"}))

	var kinds []string
	var dropped string
	_, err = l.Verify(func(_ int, raw string) {
		var ln Line
		body, _, _ := splitMAC([]byte(raw))
		require.NoError(t, json.Unmarshal(body, &ln))
		kinds = append(kinds, ln.Kind)
		if ln.Kind == "log.dropped" {
			dropped = ln.Fields["count"]
		}
	})
	require.NoError(t, err)
	require.Equal(t, []string{"pairing.reject", "log.dropped"}, kinds, "the decision is on disk before any noise is written")
	require.Equal(t, "6", dropped)

	go l.writer()
	require.NoError(t, l.Flush(context.Background()))
	n, err := l.Verify(nil)
	require.NoError(t, err)
	require.Equal(t, 6, n, "decision, drop count and the 4 queued events")
	require.NoError(t, l.Close())
	require.Error(t, l.Record(Event{Kind: "config.set"}), "a closed log says so")
	l.Note(Event{Kind: "auth.success"}) // and never panics
}

func TestAuthRecorderShedsNoiseAndWritesLockouts(t *testing.T) {
	dir, key := t.TempDir(), newKey(t)
	l, err := open(dir, key, false, 1, false)
	require.NoError(t, err)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	rec := AuthRecorder(l)
	ctx := context.Background()
	rec(ctx, auth.Event{Kind: "auth.success", Addr: "a", ID: "cli"})
	rec(ctx, auth.Event{Kind: "auth.failure", Addr: "a"}) // queue (1) full: shed
	rec(ctx, auth.Event{Kind: "auth.lockout", Addr: "a"}) // decision: written now
	rec(ctx, auth.Event{Kind: "auth.lockout", Addr: "a"}) // repeat: noise, shed
	now = now.Add(repeatEvery)
	rec(ctx, auth.Event{Kind: "auth.lockout", Addr: "a"}) // a minute on: a decision again
	var kinds []string
	_, err = l.Verify(func(_ int, raw string) {
		var ln Line
		body, _, _ := splitMAC([]byte(raw))
		require.NoError(t, json.Unmarshal(body, &ln))
		kinds = append(kinds, ln.Kind)
	})
	require.NoError(t, err)
	require.Equal(t, []string{"auth.lockout", "log.dropped", "auth.lockout", "log.dropped"}, kinds)
	go l.writer()
	require.NoError(t, l.Close())
}

func TestDecisionNamesTheCaller(t *testing.T) {
	ctx := auth.WithCaller(context.Background(), auth.Caller{ID: auth.IDCLI, Addr: "172.18.0.1"})
	ev := Decision(ctx, "pairing.revoke", "telegram:42", nil)
	require.Equal(t, Event{Kind: "pairing.revoke", Actor: auth.IDCLI, Addr: "172.18.0.1", Target: "telegram:42"}, ev)
	require.NoError(t, Put(nil, ev))
}

func TestSubscribeSeesNewLines(t *testing.T) {
	l, err := Open(t.TempDir(), newKey(t))
	require.NoError(t, err)
	defer l.Close()
	ch, cancel := l.Subscribe()
	defer cancel()
	require.NoError(t, l.Record(Event{Kind: "key.rotate", Target: "k2"}))
	line := <-ch
	require.Contains(t, line, `"key.rotate"`)
}

// A reader that sees lines the writer appended before it updated the head
// (the race of a live log) must not call the log edited; a head that counts
// more lines than the file holds still fails.
func TestVerifyWhileTheWriterAppends(t *testing.T) {
	dir, key := t.TempDir(), newKey(t)
	write(t, dir, key, 3)
	headPath := filepath.Join(dir, HeadFile)
	old, err := os.ReadFile(headPath)
	require.NoError(t, err)
	write(t, dir, key, 2)
	require.NoError(t, os.WriteFile(headPath, old, 0o600)) // head not yet updated
	n, err := Verify(dir, key, nil)
	require.NoError(t, err)
	require.Equal(t, 5, n)

	lines := readLines(t, dir)
	writeLines(t, dir, lines[:2])
	_, err = Verify(dir, key, nil)
	var ve *VerifyError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, 3, ve.Line, "the head's last line is missing")
}

func TestOversizedLineIsNamed(t *testing.T) {
	dir, key := t.TempDir(), newKey(t)
	write(t, dir, key, 1)
	lines := append(readLines(t, dir), string(bytes.Repeat([]byte("x"), MaxLine+1)))
	writeLines(t, dir, lines)
	_, err := Verify(dir, key, nil)
	var ve *VerifyError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, 2, ve.Line)
}

// A plain listing shows every stored line, also past a bad one.
func TestLinesListsPastABadLine(t *testing.T) {
	dir, key := t.TempDir(), newKey(t)
	write(t, dir, key, 3)
	lines := readLines(t, dir)
	lines[1] = strings.Replace(lines[1], "10.0.0.1", "10.0.0.9", 1)
	writeLines(t, dir, lines)
	l, err := Open(t.TempDir(), key)
	require.NoError(t, err)
	defer l.Close()
	l.dir = dir // the tampered log, read as the running gateway would
	var got []string
	require.NoError(t, l.Lines(func(_ int, raw string) { got = append(got, raw) }))
	require.Equal(t, lines, got)
	_, err = l.Verify(nil)
	require.Error(t, err)
}

// Decisions and noise from many goroutines keep one intact chain, and
// every decision is in it.
func TestConcurrentWritersKeepOneChain(t *testing.T) {
	dir, key := t.TempDir(), newKey(t)
	l, err := Open(dir, key)
	require.NoError(t, err)
	const workers, each = 8, 25
	done := make(chan struct{})
	for w := 0; w < workers; w++ {
		go func(w int) {
			defer func() { done <- struct{}{} }()
			for i := 0; i < each; i++ {
				l.Note(Event{Kind: "auth.success"})
				if err := l.Record(Event{Kind: "config.set", Target: fmt.Sprintf("w%d.i%d", w, i)}); err != nil {
					t.Error(err)
				}
			}
		}(w)
	}
	for w := 0; w < workers; w++ {
		<-done
	}
	require.NoError(t, l.Close())
	decisions := 0
	_, err = Verify(dir, key, func(_ int, raw string) {
		if strings.Contains(raw, `"config.set"`) {
			decisions++
		}
	})
	require.NoError(t, err)
	require.Equal(t, workers*each, decisions)
}
