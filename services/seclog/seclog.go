// Package seclog is the security event log: logs/security.jsonl, one JSON
// object per line, each carrying the SHA-256 of the previous line, and a
// head file holding the hash and count of the last line, so an edited,
// removed or truncated line is detected by Verify. Values are never secret:
// callers pass identities, addresses, ids and field paths, never tokens or
// plaintext.
package seclog

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moltbot/moltbot-secure/services/atomicfile"
)

// File names under the log dir.
const (
	LogFile  = "security.jsonl"
	HeadFile = "security.head"
)

var genesis = strings.Repeat("0", 64)

// Event is what a caller records.
type Event struct {
	Kind   string            `json:"kind"` // auth.success, auth.failure, auth.lockout, pairing.approve, secret.write, key.rotate, cert.rotate, ...
	Actor  string            `json:"actor,omitempty"`
	Addr   string            `json:"addr,omitempty"`
	Target string            `json:"target,omitempty"`
	Fields map[string]string `json:"fields,omitempty"`
}

// Line is one stored record.
type Line struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"ts"`
	Event
	Prev string `json:"prev"`
}

type head struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// Log appends events. Record never blocks the caller: events go through a
// bounded queue to one writer goroutine that batches and fsyncs. If the
// queue overflows, the drop count is itself recorded.
type Log struct {
	dir   string
	now   func() time.Time
	queue chan Event

	mu      sync.Mutex // guards the file state below and subscribers
	f       *os.File
	seq     uint64
	prev    string
	dropped uint64
	subs    map[chan string]struct{}

	done chan struct{}
}

// Open opens (creating 0600) the log in dir and checks the chain tail
// against the head file so appends continue a valid chain.
func Open(dir string) (*Log, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create log dir %s: %w", dir, err)
	}
	l := &Log{dir: dir, now: time.Now, queue: make(chan Event, 4096), prev: genesis, subs: map[chan string]struct{}{}, done: make(chan struct{})}
	last, n, err := tail(filepath.Join(dir, LogFile))
	if err != nil {
		return nil, err
	}
	if n > 0 {
		l.seq, l.prev = n, hashLine(last)
	}
	f, err := os.OpenFile(filepath.Join(dir, LogFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", filepath.Join(dir, LogFile), err)
	}
	_ = f.Chmod(0o600)
	l.f = f
	go l.writer()
	return l, nil
}

// Dir returns the log directory.
func (l *Log) Dir() string { return l.dir }

// Record queues ev; it never blocks.
func (l *Log) Record(ev Event) {
	select {
	case l.queue <- ev:
	default:
		l.mu.Lock()
		l.dropped++
		l.mu.Unlock()
	}
}

// Close flushes and closes the log.
func (l *Log) Close() error {
	close(l.queue)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

func (l *Log) writer() {
	defer close(l.done)
	for ev := range l.queue {
		batch := []Event{ev}
	drain:
		for len(batch) < 256 {
			select {
			case e, ok := <-l.queue:
				if !ok {
					break drain
				}
				batch = append(batch, e)
			default:
				break drain
			}
		}
		l.write(batch)
	}
}

func (l *Log) write(batch []Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dropped > 0 {
		batch = append(batch, Event{Kind: "log.dropped", Fields: map[string]string{"count": fmt.Sprint(l.dropped)}})
		l.dropped = 0
	}
	var buf bytes.Buffer
	var lines []string
	for _, ev := range batch {
		l.seq++
		b, err := json.Marshal(Line{Seq: l.seq, Time: l.now().UTC(), Event: ev, Prev: l.prev})
		if err != nil {
			l.seq--
			continue
		}
		buf.Write(b)
		buf.WriteByte('\n')
		l.prev = hashLine(b)
		lines = append(lines, string(b))
	}
	if _, err := l.f.Write(buf.Bytes()); err != nil {
		return
	}
	_ = l.f.Sync()
	hb, _ := json.Marshal(head{Seq: l.seq, Hash: l.prev})
	_ = atomicfile.WriteFile(filepath.Join(l.dir, HeadFile), hb, 0o600)
	for ch := range l.subs {
		for _, s := range lines {
			select {
			case ch <- s:
			default: // a slow follower misses lines rather than blocking the log
			}
		}
	}
}

// Flush waits until everything recorded so far is on disk.
func (l *Log) Flush(ctx context.Context) error {
	for {
		if len(l.queue) == 0 {
			l.mu.Lock() // the writer holds mu while writing a batch
			l.mu.Unlock()
			if len(l.queue) == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Subscribe returns a channel of new lines and a cancel func.
func (l *Log) Subscribe() (<-chan string, func()) {
	ch := make(chan string, 256)
	l.mu.Lock()
	l.subs[ch] = struct{}{}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		delete(l.subs, ch)
		l.mu.Unlock()
	}
}

func hashLine(b []byte) string {
	s := sha256.Sum256(bytes.TrimRight(b, "\n"))
	return hex.EncodeToString(s[:])
}

// tail returns the last line and the number of lines.
func tail(path string) ([]byte, uint64, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	var last []byte
	var n uint64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		last = append(last[:0], sc.Bytes()...)
		n++
	}
	return last, n, sc.Err()
}

// VerifyError names the first bad line.
type VerifyError struct {
	Line   int // 1-based; 0 for the head file
	Reason string
}

func (e *VerifyError) Error() string {
	if e.Line == 0 {
		return "security log: " + e.Reason
	}
	return fmt.Sprintf("security log line %d: %s", e.Line, e.Reason)
}

// Verify checks the chain in dir and calls each (if non-nil) for every line.
func Verify(dir string, each func(n int, raw string)) (int, error) {
	f, err := os.Open(filepath.Join(dir, LogFile))
	if err != nil {
		return 0, fmt.Errorf("open security log: %w", err)
	}
	defer f.Close()
	return verify(f, filepath.Join(dir, HeadFile), each)
}

func verify(r io.Reader, headPath string, each func(int, string)) (int, error) {
	// The head is read before the lines: the writer appends (and syncs) a
	// line before it updates the head, so every line the head counts is
	// already in the file, and lines appended while we read are checked by
	// the chain alone. Reading it after the lines raced with the writer and
	// reported a live, intact log as edited.
	hb, herr := os.ReadFile(headPath)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	prev, n := genesis, 0
	var h head
	hbad := herr == nil && json.Unmarshal(hb, &h) != nil
	atHead := prev // the hash after line h.Seq
	for sc.Scan() {
		n++
		raw := sc.Bytes()
		var ln Line
		if err := json.Unmarshal(raw, &ln); err != nil {
			return n, &VerifyError{Line: n, Reason: "not valid JSON (edited?)"}
		}
		if ln.Prev != prev {
			return n, &VerifyError{Line: n, Reason: "previous-line hash does not match: a line before it was edited or removed"}
		}
		if ln.Seq != uint64(n) {
			return n, &VerifyError{Line: n, Reason: fmt.Sprintf("sequence %d where %d was expected: a line was removed", ln.Seq, n)}
		}
		prev = hashLine(raw)
		if uint64(n) == h.Seq {
			atHead = prev
		}
		if each != nil {
			each(n, string(raw))
		}
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("read security log: %w", err)
	}
	if herr != nil {
		if errors.Is(herr, fs.ErrNotExist) && n == 0 {
			return 0, nil
		}
		return n, &VerifyError{Reason: "head file missing or unreadable: " + herr.Error()}
	}
	if hbad {
		return n, &VerifyError{Reason: "head file is not valid JSON"}
	}
	if h.Seq > uint64(n) {
		return n, &VerifyError{Line: int(h.Seq), Reason: fmt.Sprintf("log ends at line %d but the head records %d lines: lines were removed from the end", n, h.Seq)}
	}
	if h.Hash != atHead {
		return n, &VerifyError{Line: int(h.Seq), Reason: "line does not match the head hash: it was edited"}
	}
	return n, nil
}
