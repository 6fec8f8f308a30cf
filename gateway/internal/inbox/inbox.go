// Package inbox is the gateway's durable inbound queue. A long-polling
// channel stores each update here before it confirms the update to the
// network (Telegram: the next getUpdates offset), and removes it once the
// message is processed. A crash at any point therefore loses nothing: what
// was stored and not processed is offered again on the next start (at
// least once), and an update the network sends twice, or that was already
// processed, is dropped by its id.
//
// The store is bbolt (as pairingd's): each change is one fsynced
// transaction. Layout: bucket "pending" -> one bucket per account -> key
// the update id (8 bytes, big endian), value the raw update; bucket "done"
// -> account -> id -> when it was finished (unix nanoseconds), kept for
// Retain so a late duplicate is still recognised.
package inbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Retain is how long a processed id is remembered. Telegram keeps an
// unconfirmed update for 24 hours, so no duplicate can come later.
const Retain = 48 * time.Hour

// MaxDone bounds the processed ids remembered per account, whatever the
// traffic; beyond it the lowest (oldest) ids are forgotten first.
const MaxDone = 100_000

var (
	bPending = []byte("pending")
	bDone    = []byte("done")
)

// Path is the inbox file in the gateway's state dir.
func Path(stateDir string) string { return filepath.Join(stateDir, "sessions", "inbound.db") }

// Entry is one stored, unprocessed update.
type Entry struct {
	ID      int64
	Payload []byte
}

// Inbox is safe for concurrent use. Ids are claimed in memory while this
// process works on them, so a reload's new adapter does not replay what
// the old one still processes.
type Inbox struct {
	db      *bolt.DB
	now     func() time.Time
	maxDone int

	mu      sync.Mutex
	claimed map[string]bool
	dones   int
}

// Open opens (or creates, mode 0600) the inbox at path. Its directory must
// exist (statedir.Ensure makes it).
func Open(path string) (*Inbox, error) {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("inbound queue %s is not a regular file; move it away and restart the gateway", path)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open inbound queue %s: %w (is another gateway using this state dir?)", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("inbound queue %s: %w", path, err)
	}
	// A lone ack waits at most this long for others to share its commit.
	db.MaxBatchDelay = 2 * time.Millisecond
	q := &Inbox{db: db, now: time.Now, maxDone: MaxDone, claimed: map[string]bool{}}
	if err := q.prune(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return q, nil
}

// Close closes the file; unfinished ids stay stored for the next start.
func (q *Inbox) Close() error { return q.db.Close() }

func key(id int64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], uint64(id))
	return k[:]
}

func claimKey(account string, id int64) string { return fmt.Sprintf("%s/%d", account, id) }

// Put stores an update of account (a channel and bot) and claims it. New is
// false, and nothing changes, when the id is already stored or was
// processed: the caller drops the duplicate.
func (q *Inbox) Put(account string, id int64, payload []byte) (isNew bool, err error) {
	fresh, err := q.PutAll(account, []Item{{ID: id, Payload: payload}})
	if err != nil {
		return false, err
	}
	return fresh[0], nil
}

// Item is one update for PutAll.
type Item struct {
	ID      int64
	Payload []byte
}

// PutAll stores the updates of one poll in one transaction (one fsync, not
// one per update: the poller confirms nothing until they are stored, so
// this is on every message's path) and claims the new ones. fresh[i] is
// false for a duplicate. Either all are stored or none.
func (q *Inbox) PutAll(account string, items []Item) (fresh []bool, err error) {
	if account == "" {
		return nil, errors.New("inbox: account is empty")
	}
	fresh = make([]bool, len(items))
	if len(items) == 0 {
		return fresh, nil
	}
	err = q.db.Update(func(tx *bolt.Tx) error {
		clear(fresh) // a retried transaction starts over
		done := sub(tx, bDone, account)
		p, err := create(tx, bPending, account)
		if err != nil {
			return err
		}
		for i, it := range items {
			if done != nil && done.Get(key(it.ID)) != nil {
				continue
			}
			if p.Get(key(it.ID)) != nil {
				continue
			}
			if err := p.Put(key(it.ID), it.Payload); err != nil {
				return err
			}
			fresh[i] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store %d inbound update(s) from %d: %w", len(items), items[0].ID, err)
	}
	q.mu.Lock()
	for i, it := range items {
		if fresh[i] {
			q.claimed[claimKey(account, it.ID)] = true
		}
	}
	q.mu.Unlock()
	return fresh, nil
}

// Done removes a processed update and remembers its id for Retain. Acks
// that arrive together (the dispatcher's workers finishing at once) share
// one transaction and one fsync through bbolt's Batch: one fsync per
// message held the single writer lock long enough to delay the next poll's
// PutAll, which is on every message's path. The function is idempotent, as
// Batch requires (it may run twice).
func (q *Inbox) Done(account string, id int64) error {
	now := q.now()
	err := q.db.Batch(func(tx *bolt.Tx) error {
		if p := sub(tx, bPending, account); p != nil {
			if err := p.Delete(key(id)); err != nil {
				return err
			}
		}
		d, err := create(tx, bDone, account)
		if err != nil {
			return err
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(now.UnixNano()))
		return d.Put(key(id), v[:])
	})
	q.mu.Lock()
	delete(q.claimed, claimKey(account, id))
	q.dones++
	prune := q.dones%512 == 0
	q.mu.Unlock()
	if err != nil {
		return fmt.Errorf("remove processed inbound update %d: %w", id, err)
	}
	if prune {
		return q.prune()
	}
	return nil
}

// Release gives up this process's claim without finishing the update: it
// stays stored and is offered again on the next start.
func (q *Inbox) Release(account string, id int64) {
	q.mu.Lock()
	delete(q.claimed, claimKey(account, id))
	q.mu.Unlock()
}

// Unclaimed returns account's stored, unprocessed updates that no one in
// this process works on, oldest id first, and claims them.
func (q *Inbox) Unclaimed(account string) ([]Entry, error) {
	var out []Entry
	err := q.db.View(func(tx *bolt.Tx) error {
		p := sub(tx, bPending, account)
		if p == nil {
			return nil
		}
		return p.ForEach(func(k, v []byte) error {
			out = append(out, Entry{ID: int64(binary.BigEndian.Uint64(k)), Payload: append([]byte(nil), v...)})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read inbound queue: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	q.mu.Lock()
	defer q.mu.Unlock()
	kept := out[:0]
	for _, e := range out {
		if k := claimKey(account, e.ID); !q.claimed[k] {
			q.claimed[k] = true
			kept = append(kept, e)
		}
	}
	return kept, nil
}

// Counts reports stored unprocessed and remembered processed ids of account.
func (q *Inbox) Counts(account string) (pending, done int, err error) {
	err = q.db.View(func(tx *bolt.Tx) error {
		if p := sub(tx, bPending, account); p != nil {
			pending = p.Stats().KeyN
		}
		if d := sub(tx, bDone, account); d != nil {
			done = d.Stats().KeyN
		}
		return nil
	})
	return pending, done, err
}

// prune forgets processed ids older than Retain, and the lowest ids
// beyond maxDone.
func (q *Inbox) prune() error {
	cut := uint64(q.now().Add(-Retain).UnixNano())
	err := q.db.Update(func(tx *bolt.Tx) error {
		top := tx.Bucket(bDone)
		if top == nil {
			return nil
		}
		return top.ForEachBucket(func(acct []byte) error {
			b := top.Bucket(acct)
			c := b.Cursor()
			for k, v := c.First(); k != nil; {
				if len(v) == 8 && binary.BigEndian.Uint64(v) < cut {
					if err := c.Delete(); err != nil {
						return err
					}
					k, v = c.Seek(k)
					continue
				}
				k, v = c.Next()
			}
			for extra := b.Stats().KeyN - q.maxDone; extra > 0; extra-- {
				if k, _ := c.First(); k == nil {
					break
				}
				if err := c.Delete(); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("prune inbound queue: %w", err)
	}
	return nil
}

func sub(tx *bolt.Tx, top []byte, account string) *bolt.Bucket {
	t := tx.Bucket(top)
	if t == nil {
		return nil
	}
	return t.Bucket([]byte(account))
}

func create(tx *bolt.Tx, top []byte, account string) (*bolt.Bucket, error) {
	t, err := tx.CreateBucketIfNotExists(top)
	if err != nil {
		return nil, err
	}
	return t.CreateBucketIfNotExists([]byte(account))
}
