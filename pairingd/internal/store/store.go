// Package store keeps pairingd's durable state: pending pairing requests and
// the per-channel allowlists.
//
// Store is the seam of DESIGN 7b (one implementation now, a shared store when
// several gateways run). The implementation is bbolt, the embedded B+tree that
// containerd uses for its metadata: every change is one transaction that is
// fsynced before the commit returns, so a kill -9 at any moment leaves either
// the old or the new state on disk and never loses an approved sender; a
// request moving to the allowlist is a single transaction, so a crash cannot
// drop it from both places or leave it in both.
//
// Layout: bucket "pending" -> one bucket per channel -> key sender id, value
// JSON Pending; bucket "allowed" -> one bucket per channel -> key sender id,
// value JSON Allowed.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/moltbot/moltbot-secure/services/errs"
)

// Pending is a pairing request waiting for the operator.
type Pending struct {
	Channel   string            `json:"channel"`
	SenderID  string            `json:"senderId"`
	Code      string            `json:"code"`
	Meta      map[string]string `json:"meta,omitempty"`
	CreatedAt time.Time         `json:"createdAt"`
	ExpiresAt time.Time         `json:"expiresAt"`
	// LastReplyAt is when the sender was last told the code; it drives the
	// resend rate limit and survives restarts so a restart is no reply storm.
	LastReplyAt time.Time `json:"lastReplyAt"`
}

// Allowed is a sender on a channel's allowlist.
type Allowed struct {
	Channel    string    `json:"channel"`
	SenderID   string    `json:"senderId"`
	ApprovedAt time.Time `json:"approvedAt"`
}

// Store is the persistence seam used by the pairing domain. Methods taking a
// channel treat "" as "all channels" only where documented.
type Store interface {
	// PutPending inserts or replaces the pending request of p.SenderID.
	PutPending(p Pending) error
	// DeletePending removes pending requests by sender; missing ones are ignored.
	DeletePending(channel string, senderIDs ...string) error
	// ListPending returns pending requests of a channel ("" = all), oldest first.
	ListPending(channel string) ([]Pending, error)
	// Promote atomically removes the pending request of senderID and adds the
	// sender to the allowlist. errs.ErrNotFound when no such request exists.
	Promote(channel, senderID string, at time.Time) (Pending, error)
	// RemoveAllowed drops a sender from the allowlist; errs.ErrNotFound when absent.
	RemoveAllowed(channel, senderID string) error
	// IsAllowed reports whether senderID is on the channel's allowlist.
	IsAllowed(channel, senderID string) (bool, error)
	// ListAllowed returns the allowlist of a channel ("" = all), sorted.
	ListAllowed(channel string) ([]Allowed, error)
	// Import writes pending requests and allowed senders in one transaction.
	Import(pending []Pending, allowed []Allowed) error
	// Close releases the database.
	Close() error
}

var (
	bucketPending = []byte("pending")
	bucketAllowed = []byte("allowed")
)

// Bolt is the bbolt implementation of Store.
type Bolt struct {
	db *bolt.DB

	// allowed mirrors the allowed bucket in memory: IsAllowed is on every
	// inbound message's path, and a map lookup's cost does not grow with
	// the allowlist the way a B+tree walk over a page cache does. This
	// process is the file's only writer (bbolt's flock), and the map is
	// changed only after a write commits.
	mu      sync.RWMutex
	allowed map[allowKey]struct{}
}

type allowKey struct{ channel, sender string }

var _ Store = (*Bolt)(nil)

// Open opens (creating when needed) the database at path, conventionally
// <stateDir>/credentials/pairing.db. The parent directory is created 0700 and
// the file 0600: the allowlist decides who may talk to the agent.
func Open(path string) (*Bolt, error) {
	if path == "" {
		return nil, fmt.Errorf("pairing store path is empty: %w", errs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create pairing store dir: %w", err)
	}
	// A timeout instead of blocking forever when another pairingd holds the flock.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open pairing store %s: locked by another process (is a second pairingd running?): %w", path, errs.ErrUnavailable)
		}
		return nil, fmt.Errorf("open pairing store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketPending, bucketAllowed} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("init pairing store %s: %w", path, err)
	}
	b := &Bolt{db: db, allowed: map[allowKey]struct{}{}}
	if err := db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketAllowed)
		return root.ForEachBucket(func(ch []byte) error {
			return root.Bucket(ch).ForEach(func(k, _ []byte) error {
				b.allowed[allowKey{string(ch), string(k)}] = struct{}{}
				return nil
			})
		})
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("read the allowlist of pairing store %s: %w", path, err)
	}
	return b, nil
}

// Close closes the database.
func (b *Bolt) Close() error { return b.db.Close() }

func channelBucket(tx *bolt.Tx, root []byte, channel string, create bool) (*bolt.Bucket, error) {
	r := tx.Bucket(root)
	if r == nil {
		return nil, fmt.Errorf("bucket %s missing", root)
	}
	if create {
		return r.CreateBucketIfNotExists([]byte(channel))
	}
	return r.Bucket([]byte(channel)), nil
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

// PutPending implements Store.
func (b *Bolt) PutPending(p Pending) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk, err := channelBucket(tx, bucketPending, p.Channel, true)
		if err != nil {
			return err
		}
		return putJSON(bk, p.SenderID, p)
	})
	if err != nil {
		return fmt.Errorf("store pending request: %w", err)
	}
	return nil
}

// DeletePending implements Store.
func (b *Bolt) DeletePending(channel string, senderIDs ...string) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk, err := channelBucket(tx, bucketPending, channel, false)
		if err != nil || bk == nil {
			return err
		}
		for _, id := range senderIDs {
			if err := bk.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete pending request: %w", err)
	}
	return nil
}

// forEachChannel calls fn for the named channel bucket, or every one when channel is "".
func forEachChannel(tx *bolt.Tx, root []byte, channel string, fn func(*bolt.Bucket) error) error {
	r := tx.Bucket(root)
	if r == nil {
		return fmt.Errorf("bucket %s missing", root)
	}
	if channel != "" {
		bk := r.Bucket([]byte(channel))
		if bk == nil {
			return nil
		}
		return fn(bk)
	}
	return r.ForEachBucket(func(k []byte) error { return fn(r.Bucket(k)) })
}

// ListPending implements Store.
func (b *Bolt) ListPending(channel string) ([]Pending, error) {
	var out []Pending
	err := b.db.View(func(tx *bolt.Tx) error {
		return forEachChannel(tx, bucketPending, channel, func(bk *bolt.Bucket) error {
			return bk.ForEach(func(k, v []byte) error {
				var p Pending
				if err := json.Unmarshal(v, &p); err != nil {
					return fmt.Errorf("decode pending %q: %w", k, err)
				}
				out = append(out, p)
				return nil
			})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list pending requests: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].Channel+"\x00"+out[i].SenderID < out[j].Channel+"\x00"+out[j].SenderID
	})
	return out, nil
}

// Promote implements Store.
func (b *Bolt) Promote(channel, senderID string, at time.Time) (Pending, error) {
	var p Pending
	err := b.db.Update(func(tx *bolt.Tx) error {
		pb, err := channelBucket(tx, bucketPending, channel, false)
		if err != nil {
			return err
		}
		var v []byte
		if pb != nil {
			v = pb.Get([]byte(senderID))
		}
		if v == nil {
			return fmt.Errorf("pending request for sender %q on channel %q: %w", senderID, channel, errs.ErrNotFound)
		}
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("decode pending: %w", err)
		}
		if err := pb.Delete([]byte(senderID)); err != nil {
			return err
		}
		ab, err := channelBucket(tx, bucketAllowed, channel, true)
		if err != nil {
			return err
		}
		return putJSON(ab, senderID, Allowed{Channel: channel, SenderID: senderID, ApprovedAt: at})
	})
	if err != nil {
		return Pending{}, fmt.Errorf("approve: %w", err)
	}
	b.mu.Lock()
	b.allowed[allowKey{channel, senderID}] = struct{}{}
	b.mu.Unlock()
	return p, nil
}

// RemoveAllowed implements Store.
func (b *Bolt) RemoveAllowed(channel, senderID string) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		ab, err := channelBucket(tx, bucketAllowed, channel, false)
		if err != nil {
			return err
		}
		if ab == nil || ab.Get([]byte(senderID)) == nil {
			return fmt.Errorf("sender %q is not on the allowlist of channel %q: %w", senderID, channel, errs.ErrNotFound)
		}
		return ab.Delete([]byte(senderID))
	})
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	b.mu.Lock()
	delete(b.allowed, allowKey{channel, senderID})
	b.mu.Unlock()
	return nil
}

// IsAllowed implements Store, from the in-memory mirror.
func (b *Bolt) IsAllowed(channel, senderID string) (bool, error) {
	b.mu.RLock()
	_, ok := b.allowed[allowKey{channel, senderID}]
	b.mu.RUnlock()
	return ok, nil
}

// ListAllowed implements Store.
func (b *Bolt) ListAllowed(channel string) ([]Allowed, error) {
	var out []Allowed
	err := b.db.View(func(tx *bolt.Tx) error {
		return forEachChannel(tx, bucketAllowed, channel, func(bk *bolt.Bucket) error {
			return bk.ForEach(func(k, v []byte) error {
				var a Allowed
				if err := json.Unmarshal(v, &a); err != nil {
					return fmt.Errorf("decode allowed %q: %w", k, err)
				}
				out = append(out, a)
				return nil
			})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list allowlist: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Channel != out[j].Channel {
			return out[i].Channel < out[j].Channel
		}
		return out[i].SenderID < out[j].SenderID
	})
	return out, nil
}

// Import implements Store.
func (b *Bolt) Import(pending []Pending, allowed []Allowed) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		for _, p := range pending {
			bk, err := channelBucket(tx, bucketPending, p.Channel, true)
			if err != nil {
				return err
			}
			if err := putJSON(bk, p.SenderID, p); err != nil {
				return err
			}
		}
		for _, a := range allowed {
			bk, err := channelBucket(tx, bucketAllowed, a.Channel, true)
			if err != nil {
				return err
			}
			if bk.Get([]byte(a.SenderID)) == nil { // keep the original approval time
				if err := putJSON(bk, a.SenderID, a); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	b.mu.Lock()
	for _, a := range allowed {
		b.allowed[allowKey{a.Channel, a.SenderID}] = struct{}{}
	}
	b.mu.Unlock()
	return nil
}
