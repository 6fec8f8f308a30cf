package seckey

import (
	"context"
	"errors"
	"sync"
)

// AcrossImport carries the key across a keyring import (the gateway's
// api.Resealer): Unseal opens it under the old keyring and holds it in
// memory, Reseal seals it under the imported one. Without it the log's key
// would no longer open after `security key import`, and the gateway would
// refuse to start.
type AcrossImport struct {
	st  *Store
	mu  sync.Mutex
	key []byte
}

// AcrossImport returns the import adapter of st.
func (st *Store) AcrossImport() *AcrossImport { return &AcrossImport{st: st} }

// Unseal opens the key under the current keyring and keeps it until Reseal.
func (a *AcrossImport) Unseal(ctx context.Context) error {
	key, err := a.st.Unseal(ctx)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.key = key
	a.mu.Unlock()
	return nil
}

// Reseal seals the held key under the current (imported) keyring and
// forgets it.
func (a *AcrossImport) Reseal(ctx context.Context) error {
	a.mu.Lock()
	key := a.key
	a.key = nil
	a.mu.Unlock()
	if key == nil {
		return errors.New("seckey: Reseal without a preceding Unseal")
	}
	defer clear(key)
	return a.st.Reseal(ctx, key)
}
