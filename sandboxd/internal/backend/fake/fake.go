// Package fake is an in-memory backend.Backend for the orchestration
// logic's unit tests (internal/sandbox, internal/api). The engine is the
// outside service: the Docker backend itself is tested against the real
// engine behind the integration build tag.
package fake

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/moltbot/moltbot-secure/sandboxd/internal/backend"
	"github.com/moltbot/moltbot-secure/services/errs"
)

// Backend keeps containers and volumes in maps. Exec runs ExecFunc when
// set, else answers exit 0 with no output.
type Backend struct {
	mu         sync.Mutex
	seq        int
	containers map[string]*entry
	images     map[string]bool
	volumes    map[string]map[string]string // name -> labels
	usage      map[string]int64             // volume -> bytes
	down       error

	// ExecFunc answers Exec; it may change the container (e.g. Kill).
	ExecFunc func(c backend.Container, spec backend.Spec, e backend.ExecSpec) (backend.ExecResult, error)
	// Creates counts Create calls; Specs holds every Spec created, in order.
	Creates int
	Specs   []backend.Spec
}

type entry struct {
	c    backend.Container
	spec backend.Spec
}

var _ backend.Backend = (*Backend)(nil)

// New returns a backend whose engine has the given images.
func New(images ...string) *Backend {
	b := &Backend{containers: map[string]*entry{}, images: map[string]bool{}, volumes: map[string]map[string]string{}, usage: map[string]int64{}}
	for _, im := range images {
		b.images[im] = true
	}
	return b
}

// SetDown makes every call fail with err (nil: the engine is back).
func (b *Backend) SetDown(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.down = err
}

// Kill stops a container as if it died (its process ended).
func (b *Backend) Kill(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.containers[id]; e != nil {
		e.c.Running, e.c.State = false, "exited"
	}
}

// Exists reports whether a container is still there.
func (b *Backend) Exists(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.containers[id] != nil
}

// SpecOf returns the Spec a container was created from.
func (b *Backend) SpecOf(id string) (backend.Spec, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.containers[id]
	if e == nil {
		return backend.Spec{}, false
	}
	return e.spec, true
}

// Add puts a container created by someone else (labels as given).
func (b *Backend) Add(name string, labels map[string]string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	id := fmt.Sprintf("%064x", b.seq)
	b.containers[id] = &entry{c: backend.Container{ID: id, Name: name, State: "running", Running: true, Labels: maps.Clone(labels)}}
	return id
}

func (b *Backend) check() error {
	if b.down != nil {
		return fmt.Errorf("fake engine: %w", b.down)
	}
	return nil
}

// Ping implements backend.Backend.
func (b *Backend) Ping(context.Context) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return "1.41", b.check()
}

// ImagePresent implements backend.Backend.
func (b *Backend) ImagePresent(_ context.Context, image string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.images[image], b.check()
}

// Create implements backend.Backend. The spec goes through backend.Build,
// so a spec the Docker backend refuses is refused here too.
func (b *Backend) Create(_ context.Context, s backend.Spec) (backend.Container, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(); err != nil {
		return backend.Container{}, err
	}
	if !b.images[s.Image] {
		return backend.Container{}, fmt.Errorf("sandbox image %q is missing: build it with `make sandbox-image`: %w", s.Image, errs.ErrFailedPrecondition)
	}
	cfg, _, err := backend.Build(s, true, "")
	if err != nil {
		return backend.Container{}, err
	}
	for _, e := range b.containers {
		if e.c.Name == s.Name {
			return backend.Container{}, fmt.Errorf("container name %q in use: %w", s.Name, errs.ErrAlreadyExists)
		}
	}
	for _, v := range s.Volumes {
		if l, ok := b.volumes[v.Name]; ok && l[backend.LabelMarker] != "1" {
			return backend.Container{}, fmt.Errorf("volume %s exists but was not created by sandboxd: %w", v.Name, errs.ErrFailedPrecondition)
		} else if !ok {
			b.volumes[v.Name] = backend.VolumeLabels(v, "")
		}
	}
	b.seq++
	b.Creates++
	b.Specs = append(b.Specs, s)
	id := fmt.Sprintf("%064x", b.seq)
	c := backend.Container{ID: id, Name: s.Name, Image: s.Image, State: "running", Running: true, Labels: cfg.Labels, Agent: true}
	b.containers[id] = &entry{c: c, spec: s}
	c.Labels = maps.Clone(c.Labels)
	return c, nil
}

// Exec implements backend.Backend.
func (b *Backend) Exec(ctx context.Context, id string, s backend.ExecSpec) (backend.ExecResult, error) {
	b.mu.Lock()
	if err := b.check(); err != nil {
		b.mu.Unlock()
		return backend.ExecResult{}, err
	}
	e := b.containers[id]
	if e == nil || !e.c.Running {
		b.mu.Unlock()
		return backend.ExecResult{}, fmt.Errorf("container %.12s: %w (%w)", id, backend.ErrContainerGone, backend.ErrNotSent)
	}
	c, spec, fn := e.c, e.spec, b.ExecFunc
	b.mu.Unlock()
	res, err := backend.ExecResult{Path: backend.PathAgent}, error(nil)
	if fn != nil {
		res, err = fn(c, spec, s)
	}
	if err == nil && s.Measure != "" {
		// As the agent does: measured after the command (which may have
		// changed the usage through SetUsage).
		res.Usage, res.UsageErr = b.DiskUsage(ctx, id, s.Measure)
	}
	return res, err
}

// List implements backend.Backend.
func (b *Backend) List(context.Context) ([]backend.Container, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(); err != nil {
		return nil, err
	}
	ids := slices.Sorted(maps.Keys(b.containers))
	out := make([]backend.Container, 0, len(ids))
	for _, id := range ids {
		c := b.containers[id].c
		if c.Labels[backend.LabelMarker] != "1" {
			continue
		}
		c.Labels = maps.Clone(c.Labels)
		out = append(out, c)
	}
	return out, nil
}

// Inspect implements backend.Backend.
func (b *Backend) Inspect(_ context.Context, id string) (backend.Container, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(); err != nil {
		return backend.Container{}, err
	}
	e := b.containers[id]
	if e == nil {
		return backend.Container{}, fmt.Errorf("inspect %.12s: %w", id, errs.ErrNotFound)
	}
	c := e.c
	c.Labels = maps.Clone(c.Labels)
	return c, nil
}

// Rename implements backend.Backend.
func (b *Backend) Rename(_ context.Context, id, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(); err != nil {
		return err
	}
	e := b.containers[id]
	if e == nil {
		return fmt.Errorf("rename %.12s: %w", id, errs.ErrNotFound)
	}
	e.c.Name = strings.TrimPrefix(name, "/")
	return nil
}

// Remove implements backend.Backend.
func (b *Backend) Remove(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(); err != nil {
		return err
	}
	delete(b.containers, id)
	return nil
}

// Close implements backend.Backend.
func (b *Backend) Close() error { return nil }

// SetUsage sets what DiskUsage reports for a volume; negative makes the
// measurement fail (an unreadable directory).
func (b *Backend) SetUsage(volume string, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.usage[volume] = bytes
}

// AddVolume puts a volume created by someone else (labels as given).
func (b *Backend) AddVolume(name string, labels map[string]string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.volumes[name] = maps.Clone(labels)
}

// HasVolume reports whether a volume exists.
func (b *Backend) HasVolume(name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.volumes[name]
	return ok
}

// DiskUsage implements backend.Backend: the usage set for the volume
// mounted at path.
func (b *Backend) DiskUsage(_ context.Context, id, path string) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(); err != nil {
		return 0, err
	}
	e := b.containers[id]
	if e == nil || !e.c.Running {
		return 0, fmt.Errorf("container %.12s: %w (%w)", id, backend.ErrContainerGone, backend.ErrNotSent)
	}
	for _, v := range e.spec.Volumes {
		if v.Target == path {
			if u := b.usage[v.Name]; u < 0 {
				return 0, fmt.Errorf("workspace could not be measured (du: permission denied): %w", errs.ErrFailedPrecondition)
			}
			return b.usage[v.Name], nil
		}
	}
	return 0, fmt.Errorf("nothing mounted at %s: %w", path, errs.ErrNotFound)
}

// ListVolumes implements backend.Backend.
func (b *Backend) ListVolumes(context.Context) ([]backend.VolumeInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(); err != nil {
		return nil, err
	}
	var out []backend.VolumeInfo
	for _, name := range slices.Sorted(maps.Keys(b.volumes)) {
		if b.volumes[name][backend.LabelMarker] == "1" {
			out = append(out, backend.VolumeInfo{Name: name, Labels: maps.Clone(b.volumes[name])})
		}
	}
	return out, nil
}

// RemoveVolume implements backend.Backend.
func (b *Backend) RemoveVolume(_ context.Context, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(); err != nil {
		return err
	}
	l, ok := b.volumes[name]
	if !ok {
		return nil
	}
	if l[backend.LabelMarker] != "1" {
		return fmt.Errorf("volume %s is not this sandboxd's: %w", name, errs.ErrPermissionDenied)
	}
	for _, e := range b.containers {
		for _, v := range e.spec.Volumes {
			if v.Name == name {
				return fmt.Errorf("volume %s is still in use by a container: %w", name, errs.ErrFailedPrecondition)
			}
		}
	}
	delete(b.volumes, name)
	delete(b.usage, name)
	return nil
}
