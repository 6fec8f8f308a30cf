// Package seclog is the security event log: logs/security.jsonl, one JSON
// object per line, keyed with HMAC-SHA256 so that whoever can write the
// file but cannot unseal the key (secretsd holds the keyring) cannot forge
// it. Each line carries the MAC of the previous line ("prev") and its own
// MAC ("mac", over the line's bytes without it); a head file holds the
// count and last MAC under a MAC of its own, so a rewritten line (even with
// the chain recomputed), a removed line, a cut tail and a rewritten head
// are all detected by Verify. Values are never secret: callers pass
// identities, addresses, ids and field paths, never tokens or plaintext.
//
// Two ways in: Record writes a decision synchronously and never drops it;
// Note queues noise (auth successes and failures) that may be shed when the
// queue is full, and the number shed is itself recorded.
package seclog

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moltbot/moltbot-secure/services/atomicfile"
)

// File names under the log dir.
const (
	LogFile  = "security.jsonl"
	HeadFile = "security.head"
)

// KeySize is the HMAC key length in bytes.
const KeySize = 32

// MaxLine bounds one line when reading (a longer one is reported, not read).
const MaxLine = 1 << 20

var genesis = strings.Repeat("0", 64)

// Domain prefixes keep a line MAC from ever being usable as a head MAC.
const (
	lineDomain = "moltbot seclog line v2\n"
	headDomain = "moltbot seclog head v2\n"
)

// macPrefix and the closing `"}` frame the MAC at the end of every line.
const macPrefix = `,"mac":"`

const macSuffixLen = len(macPrefix) + 64 + 2

// Event is what a caller records.
type Event struct {
	Kind   string            `json:"kind"` // auth.success, auth.failure, auth.lockout, pairing.approve, config.set, key.rotate, cert.rotate, ...
	Actor  string            `json:"actor,omitempty"`
	Addr   string            `json:"addr,omitempty"`
	Target string            `json:"target,omitempty"`
	Fields map[string]string `json:"fields,omitempty"`
}

// Line is one stored record (the MAC follows it on disk).
type Line struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"ts"`
	Event
	Prev string `json:"prev"`
}

type head struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
	MAC  string `json:"mac"`
}

// Recorder is what a decision-making package needs: Record writes the
// event durably before it returns (the exec router, the pairing proxy and
// the config store take one).
type Recorder interface {
	Record(ev Event) error
}

// Log appends events to a keyed chain.
type Log struct {
	dir string
	key []byte
	now func() time.Time

	qmu      sync.RWMutex // guards closing the queue against Note
	qclosed  bool
	queue    chan Event
	inflight atomic.Int64  // noted events not yet written
	dropped  atomic.Uint64 // noted events shed since the last write

	mu     sync.Mutex // guards the file state below and subscribers
	f      *os.File
	size   int64
	seq    uint64
	prev   string
	closed bool
	subs   map[chan string]struct{}

	rep      repeats
	archived string
	done     chan struct{}
}

// Open opens (creating 0600) the keyed log in dir. An existing log is
// verified under key first: one that does not verify (edited, or written
// under a lost key) is kept beside it as security.jsonl.unverified-<time>,
// and the new chain's first line says so. Nothing unverified is ever
// continued.
func Open(dir string, key []byte) (*Log, error) {
	return open(dir, key, false, 4096, true)
}

// OpenUpgrade is Open for the first start with a key made just now: only
// then can an unkeyed log be an older version's, and it is kept as
// security.jsonl.unkeyed-<time>, said so in the new chain's first line.
// Under an existing key an unkeyed log is a rewrite (Open: unverified).
func OpenUpgrade(dir string, key []byte) (*Log, error) {
	return open(dir, key, true, 4096, true)
}

func open(dir string, key []byte, upgrade bool, queueLen int, startWriter bool) (*Log, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("security log key: %d bytes, want %d (the key is made by the gateway and sealed by secretsd)", len(key), KeySize)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create log dir %s: %w", dir, err)
	}
	l := &Log{dir: dir, key: append([]byte(nil), key...), now: time.Now, queue: make(chan Event, queueLen),
		prev: genesis, subs: map[chan string]struct{}{}, done: make(chan struct{})}
	path := filepath.Join(dir, LogFile)
	var first *Event
	switch n, last, err := l.check(); {
	case errors.Is(err, errUnkeyed) && upgrade:
		name, aerr := l.archive("unkeyed")
		if aerr != nil {
			return nil, aerr
		}
		l.archived = name
		first = &Event{Kind: "log.keyed", Fields: map[string]string{"archived": name,
			"reason": "the previous log was written by an unkeyed version; it is kept, readable but not verifiable, and this keyed chain starts here"}}
	case err != nil:
		if errors.Is(err, errUnkeyed) {
			err = &VerifyError{Line: 1, Reason: "no MAC: an unkeyed log where a keyed one was, so it was rewritten"}
		}
		var ve *VerifyError
		if !errors.As(err, &ve) {
			return nil, err
		}
		name, aerr := l.archive("unverified")
		if aerr != nil {
			return nil, aerr
		}
		l.archived = name
		first = &Event{Kind: "log.archived", Fields: map[string]string{"archived": name, "reason": "did not verify under the sealed key: " + ve.Error()}}
	default:
		l.seq, l.prev = uint64(n), last
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	_ = f.Chmod(0o600)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	l.f, l.size = f, fi.Size()
	if first != nil {
		if err := l.Record(*first); err != nil {
			f.Close()
			return nil, err
		}
	}
	if startWriter { // tests start it themselves, to fill the queue first
		go l.writer()
	}
	return l, nil
}

var errUnkeyed = errors.New("unkeyed log")

// check verifies the existing log and returns its line count and last MAC;
// errUnkeyed when its first line has no MAC (an older version wrote it).
func (l *Log) check() (int, string, error) {
	f, err := os.Open(filepath.Join(l.dir, LogFile))
	if errors.Is(err, fs.ErrNotExist) {
		f = nil
	} else if err != nil {
		return 0, "", fmt.Errorf("open security log: %w", err)
	}
	var r io.Reader = strings.NewReader("")
	if f != nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), MaxLine)
		if sc.Scan() {
			if _, _, ok := splitMAC(sc.Bytes()); !ok && json.Valid(sc.Bytes()) {
				return 0, "", errUnkeyed
			}
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return 0, "", fmt.Errorf("read security log: %w", err)
		}
		r = f
	}
	hb, herr := os.ReadFile(filepath.Join(l.dir, HeadFile))
	if errors.Is(herr, fs.ErrNotExist) {
		hb = nil
	} else if herr != nil {
		return 0, "", fmt.Errorf("read security log head: %w", herr)
	}
	last := genesis
	n, err := VerifyReader(r, hb, l.key, func(_ int, raw string) {
		if _, m, ok := splitMAC([]byte(raw)); ok {
			last = m
		}
	})
	return n, last, err
}

// archive moves the log and its head aside under a timestamped name.
func (l *Log) archive(why string) (string, error) {
	ts := l.now().UTC().Format("20060102T150405Z")
	name := LogFile + "." + why + "-" + ts
	if err := os.Rename(filepath.Join(l.dir, LogFile), filepath.Join(l.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("archive security log as %s: %w", name, err)
	}
	if err := os.Rename(filepath.Join(l.dir, HeadFile), filepath.Join(l.dir, HeadFile+"."+why+"-"+ts)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("archive security log head: %w", err)
	}
	return name, atomicfile.SyncDir(l.dir)
}

// Archived names the log Open moved aside ("" when none).
func (l *Log) Archived() string { return l.archived }

// Dir returns the log directory.
func (l *Log) Dir() string { return l.dir }

// Record writes a decision now (fsync'd, head updated) and never drops
// it; the error says why it could not be written.
func (l *Log) Record(ev Event) error {
	if l == nil {
		return errors.New("security log is not open: event " + ev.Kind + " not recorded")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("security log is closed: event " + ev.Kind + " not recorded")
	}
	return l.write([]Event{ev})
}

// Note queues noise (an auth success or failure) without blocking; when
// the queue is full it is shed and counted, and the count is recorded.
func (l *Log) Note(ev Event) {
	l.qmu.RLock()
	defer l.qmu.RUnlock()
	if l.qclosed {
		return
	}
	l.inflight.Add(1)
	select {
	case l.queue <- ev:
	default:
		l.inflight.Add(-1)
		l.dropped.Add(1)
	}
}

// Close flushes and closes the log.
func (l *Log) Close() error {
	l.qmu.Lock()
	if !l.qclosed {
		l.qclosed = true
		close(l.queue)
	}
	l.qmu.Unlock()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
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
		l.mu.Lock()
		if !l.closed {
			_ = l.write(batch) // noise: a failed write is not retried
		}
		l.mu.Unlock()
		l.inflight.Add(-int64(len(batch)))
	}
}

// write appends batch (plus the shed count) and updates the head; l.mu held.
// On failure the file is cut back to its last good length.
func (l *Log) write(batch []Event) error {
	if d := l.dropped.Swap(0); d > 0 {
		batch = append(batch, Event{Kind: "log.dropped", Fields: map[string]string{"count": strconv.FormatUint(d, 10),
			"reason": "the queue for auth events was full; these events were shed, no decision was"}})
	}
	seq, prev := l.seq, l.prev
	var buf bytes.Buffer
	var lines []string
	for _, ev := range batch {
		seq++
		b, err := l.seal(Line{Seq: seq, Time: l.now().UTC(), Event: ev, Prev: prev})
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
		_, prev, _ = splitMAC(b)
		lines = append(lines, string(b))
	}
	fail := func(err error) error {
		_ = l.f.Truncate(l.size)
		return fmt.Errorf("write security log %s: %w", filepath.Join(l.dir, LogFile), err)
	}
	if _, err := l.f.Write(buf.Bytes()); err != nil {
		return fail(err)
	}
	if err := l.f.Sync(); err != nil {
		return fail(err)
	}
	hb, _ := json.Marshal(head{Seq: seq, Hash: prev, MAC: l.headMAC(seq, prev)})
	if err := atomicfile.WriteFile(filepath.Join(l.dir, HeadFile), hb, 0o600); err != nil {
		return fail(err)
	}
	l.seq, l.prev, l.size = seq, prev, l.size+int64(buf.Len())
	for ch := range l.subs {
		for _, s := range lines {
			select {
			case ch <- s:
			default: // a slow follower misses lines rather than blocking the log
			}
		}
	}
	return nil
}

// seal marshals ln and appends its MAC as the last field.
func (l *Log) seal(ln Line) ([]byte, error) {
	b, err := json.Marshal(ln)
	if err != nil {
		return nil, fmt.Errorf("encode security event %s: %w", ln.Kind, err)
	}
	m := lineMAC(l.key, b)
	out := make([]byte, 0, len(b)+macSuffixLen)
	out = append(out, b[:len(b)-1]...)
	out = append(out, macPrefix...)
	out = append(out, m...)
	return append(out, '"', '}'), nil
}

func lineMAC(key, body []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(lineDomain))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

func (l *Log) headMAC(seq uint64, hash string) string { return headMAC(l.key, seq, hash) }

func headMAC(key []byte, seq uint64, hash string) string {
	h := hmac.New(sha256.New, key)
	fmt.Fprintf(h, "%s%d\n%s", headDomain, seq, hash)
	return hex.EncodeToString(h.Sum(nil))
}

// splitMAC takes a stored line apart: the body the MAC covers (the line
// without its mac field) and the MAC. ok is false when there is none.
func splitMAC(raw []byte) (body []byte, mac string, ok bool) {
	if len(raw) < macSuffixLen+2 || raw[0] != '{' {
		return nil, "", false
	}
	cut := len(raw) - macSuffixLen
	tail := raw[cut:]
	if !bytes.HasPrefix(tail, []byte(macPrefix)) || !bytes.HasSuffix(tail, []byte(`"}`)) {
		return nil, "", false
	}
	m := tail[len(macPrefix) : len(macPrefix)+64]
	if _, err := hex.DecodeString(string(m)); err != nil || strings.ToLower(string(m)) != string(m) {
		return nil, "", false
	}
	body = make([]byte, 0, cut+1)
	body = append(append(body, raw[:cut]...), '}')
	return body, string(m), true
}

// Flush waits until everything noted so far is on disk (Record needs none).
func (l *Log) Flush(ctx context.Context) error {
	for l.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
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

// Lines calls each for every line of the log as stored, verified or not
// (a listing that must not hide what follows a bad line).
func (l *Log) Lines(each func(n int, raw string)) error {
	f, err := os.Open(filepath.Join(l.dir, LogFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open security log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	n := 0
	for sc.Scan() {
		n++
		each(n, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read security log line %d: %w", n+1, err)
	}
	return nil
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

// Verify checks the log in dir under key and calls each (if non-nil) for
// every line that verified, in order.
func (l *Log) Verify(each func(n int, raw string)) (int, error) {
	return Verify(l.dir, l.key, each)
}

// VerifyHistory is Verify for the operator (`security log --verify`): it
// also fails while the chain starts after a log that did not verify when
// the gateway started (Open kept it aside and began a new chain), so a log
// tampered with while the gateway was down never reads "intact" after a
// restart. The unkeyed log of an upgrade is not such a failure.
func (l *Log) VerifyHistory(each func(n int, raw string)) (int, error) {
	var first string
	n, err := l.Verify(func(i int, raw string) {
		if i == 1 {
			first = raw
		}
		if each != nil {
			each(i, raw)
		}
	})
	if err != nil {
		return n, err
	}
	var ln Line
	if body, _, ok := splitMAC([]byte(first)); ok && json.Unmarshal(body, &ln) == nil && ln.Kind == "log.archived" {
		return n, &VerifyError{Line: 1, Reason: fmt.Sprintf("the log before this chain did not verify when the gateway started and is kept as logs/%s (%s)",
			ln.Fields["archived"], ln.Fields["reason"])}
	}
	return n, nil
}

// Verify checks the keyed chain in dir under key.
func Verify(dir string, key []byte, each func(n int, raw string)) (int, error) {
	// The head is read before the lines: the writer appends (and syncs) a
	// line before it updates the head, so every line the head counts is
	// already in the file, and lines appended while we read are checked by
	// their own MACs. Reading it after the lines raced with the writer.
	hb, herr := os.ReadFile(filepath.Join(dir, HeadFile))
	switch {
	case errors.Is(herr, fs.ErrNotExist):
		hb = nil
	case herr != nil:
		return 0, &VerifyError{Reason: "head file unreadable: " + herr.Error()}
	}
	f, err := os.Open(filepath.Join(dir, LogFile))
	if errors.Is(err, fs.ErrNotExist) && hb != nil {
		return VerifyReader(strings.NewReader(""), hb, key, each)
	}
	if err != nil {
		return 0, fmt.Errorf("open security log: %w", err)
	}
	defer f.Close()
	return VerifyReader(f, hb, key, each)
}

// VerifyReader checks the lines read from r against the head file's bytes
// (nil: no head file) under key. It is the parser of a file whoever holds
// the log's volume can write, so any input gives an error, never a panic.
func VerifyReader(r io.Reader, headBytes []byte, key []byte, each func(int, string)) (int, error) {
	if len(key) != KeySize {
		return 0, fmt.Errorf("security log key: %d bytes, want %d", len(key), KeySize)
	}
	// The head is judged after the lines, so a bad line is named first.
	var h head
	var headErr error
	if headBytes != nil {
		if err := json.Unmarshal(headBytes, &h); err != nil {
			headErr = &VerifyError{Reason: "head file is not valid JSON: it was rewritten"}
		} else if !hmac.Equal([]byte(h.MAC), []byte(headMAC(key, h.Seq, h.Hash))) {
			headErr = &VerifyError{Reason: "head file MAC does not match: it was rewritten (or the log was written under another key)"}
		}
		if headErr != nil {
			h = head{}
		}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	prev, n := genesis, 0
	atHead := ""
	for sc.Scan() {
		n++
		raw := sc.Bytes()
		body, mac, ok := splitMAC(raw)
		if !ok {
			return n, &VerifyError{Line: n, Reason: "no MAC at the end of the line: it was edited, or written by an unkeyed version"}
		}
		if !hmac.Equal([]byte(mac), []byte(lineMAC(key, body))) {
			return n, &VerifyError{Line: n, Reason: "MAC does not match: the line was edited (or the log was written under another key)"}
		}
		var ln Line
		if err := json.Unmarshal(body, &ln); err != nil {
			return n, &VerifyError{Line: n, Reason: "not valid JSON under a valid MAC"}
		}
		if !hmac.Equal([]byte(ln.Prev), []byte(prev)) {
			return n, &VerifyError{Line: n, Reason: "previous-line MAC does not match: a line before it was removed or reordered"}
		}
		if ln.Seq != uint64(n) {
			return n, &VerifyError{Line: n, Reason: fmt.Sprintf("sequence %d where %d was expected: a line was removed", ln.Seq, n)}
		}
		prev = mac
		if uint64(n) == h.Seq {
			atHead = mac
		}
		if each != nil {
			each(n, string(raw))
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return n + 1, &VerifyError{Line: n + 1, Reason: fmt.Sprintf("longer than %d bytes: not written by the gateway", MaxLine)}
		}
		return n, fmt.Errorf("read security log: %w", err)
	}
	switch {
	case headErr != nil:
		return n, headErr
	case headBytes == nil && n == 0:
		return 0, nil
	case headBytes == nil:
		return n, &VerifyError{Reason: "head file missing: it was deleted, so a cut tail cannot be ruled out"}
	case h.Seq > uint64(n):
		return n, &VerifyError{Line: n + 1, Reason: fmt.Sprintf("log ends at line %d but the head records %d lines: lines were removed from the end", n, h.Seq)}
	case h.Seq > 0 && !hmac.Equal([]byte(h.Hash), []byte(atHead)):
		return n, &VerifyError{Line: int(h.Seq), Reason: "line does not match the head: it was replaced"}
	}
	return n, nil
}
