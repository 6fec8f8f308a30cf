// Package dispatch runs work in per-key FIFO queues: jobs of one key (a
// chat session) run one at a time in submission order, jobs of different
// keys run concurrently, with a bound on the jobs running at once, on each
// queue's length and on the number of queues. A queue is freed as soon as it
// is empty, so idle sessions cost nothing.
package dispatch

import (
	"errors"
	"fmt"
	"sync"
)

// Defaults (gateway.inbound.* in the config).
const (
	DefaultWorkers   = 16
	DefaultQueueLen  = 8
	DefaultMaxQueues = 1024
)

// Upper bounds a config may ask for: beyond them a typo would only cost memory.
const (
	maxWorkers   = 1024
	maxQueueLen  = 1000
	maxMaxQueues = 100000
)

// ErrBusy is returned by Submit when the key's queue is full or too many
// queues exist: the caller tells the sender to try again.
var ErrBusy = errors.New("busy: too many messages waiting, try again")

// ErrClosed is returned by Submit after Close.
var ErrClosed = errors.New("dispatcher is stopped")

// Limits bound a Dispatcher. Zero fields take the defaults.
type Limits struct {
	Workers   int // jobs running at once, over all keys
	QueueLen  int // jobs waiting behind the running one, per key
	MaxQueues int // keys with queued or running work
}

// WithDefaults fills zero fields and refuses out-of-range values, naming
// the config key.
func (l Limits) WithDefaults() (Limits, error) {
	for _, f := range []struct {
		name     string
		v        *int
		def, max int
	}{
		{"gateway.inbound.workers", &l.Workers, DefaultWorkers, maxWorkers},
		{"gateway.inbound.queuePerSession", &l.QueueLen, DefaultQueueLen, maxQueueLen},
		{"gateway.inbound.maxSessions", &l.MaxQueues, DefaultMaxQueues, maxMaxQueues},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 1 || *f.v > f.max {
			return l, fmt.Errorf("%s: %d is out of range; use 1..%d (default %d)", f.name, *f.v, f.max, f.def)
		}
	}
	return l, nil
}

// Dispatcher is safe for concurrent use.
type Dispatcher struct {
	lim Limits
	sem chan struct{}
	wg  sync.WaitGroup

	mu     sync.Mutex
	queues map[string]*queue
	closed bool
}

type queue struct{ jobs []func() } // jobs[0] is running or waiting for a worker

// New builds a Dispatcher; see Limits.WithDefaults for the errors.
func New(l Limits) (*Dispatcher, error) {
	l, err := l.WithDefaults()
	if err != nil {
		return nil, err
	}
	return &Dispatcher{lim: l, sem: make(chan struct{}, l.Workers), queues: map[string]*queue{}}, nil
}

// Limits returns the limits in force.
func (d *Dispatcher) Limits() Limits { return d.lim }

// Submit queues job behind the key's earlier jobs. It never blocks.
func (d *Dispatcher) Submit(key string, job func()) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	q := d.queues[key]
	if q == nil {
		if len(d.queues) >= d.lim.MaxQueues {
			return ErrBusy
		}
		q = &queue{jobs: []func(){job}}
		d.queues[key] = q
		d.wg.Add(1)
		go d.run(key, q)
		return nil
	}
	if len(q.jobs)-1 >= d.lim.QueueLen {
		return ErrBusy
	}
	q.jobs = append(q.jobs, job)
	return nil
}

// run drains one key's queue. The worker slot is taken per job, not per
// queue, so a long queue does not starve other keys.
func (d *Dispatcher) run(key string, q *queue) {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		job := q.jobs[0]
		d.mu.Unlock()
		d.sem <- struct{}{}
		job()
		<-d.sem
		d.mu.Lock()
		q.jobs[0] = nil
		q.jobs = q.jobs[1:]
		if len(q.jobs) == 0 {
			delete(d.queues, key)
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
	}
}

// Close refuses new jobs and waits until every queued job has run.
func (d *Dispatcher) Close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.wg.Wait()
}

// Stats reports the keys with work and the jobs queued or running.
func (d *Dispatcher) Stats() (queues, jobs int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, q := range d.queues {
		jobs += len(q.jobs)
	}
	return len(d.queues), jobs
}
