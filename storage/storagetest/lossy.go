package storagetest

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/mlsengine/mlsengine/storage"
)

// Fault is what a LossyBackend does to one Apply.
type Fault int

const (
	// Deliver applies the unit and returns the backend's answer.
	Deliver Fault = iota
	// LoseRequest applies nothing and returns ErrUnknownOutcome, as when
	// the request was lost on its way or timed out before the backend saw
	// it.
	LoseRequest
	// LoseReply applies the unit and returns ErrUnknownOutcome instead of
	// the backend's answer, as when the reply was lost, the connection
	// dropped or the leader failed over after the write.
	LoseReply
)

// String returns the fault's name.
func (f Fault) String() string {
	switch f {
	case Deliver:
		return "Deliver"
	case LoseRequest:
		return "LoseRequest"
	case LoseReply:
		return "LoseReply"
	}
	return "Fault(" + strconv.Itoa(int(f)) + ")"
}

// LossyBackend wraps a Backend and loses the requests or replies of the
// Apply calls its plan picks, answering ErrUnknownOutcome, the way a store
// over a network fails. Reads pass through. It implements storage.Inspector
// when the wrapped backend does (RawContents fails otherwise). Use it to
// test that a caller keeps what an operation produced until the outcome is
// known, and retries the same unit.
type LossyBackend struct {
	storage.Backend
	mu     sync.Mutex
	plan   func(u *storage.Unit) Fault
	faults atomic.Int64
}

// Lossy wraps b; plan decides the fate of each Apply (called one at a time,
// with the unit, which it must not keep or change). A nil plan never fails.
func Lossy(b storage.Backend, plan func(u *storage.Unit) Fault) *LossyBackend {
	return &LossyBackend{Backend: b, plan: plan}
}

// Script is a plan that gives the faults in order, one per Apply, then
// Deliver forever.
func Script(faults ...Fault) func(*storage.Unit) Fault {
	return func(*storage.Unit) Fault {
		if len(faults) == 0 {
			return Deliver
		}
		f := faults[0]
		faults = faults[1:]
		return f
	}
}

// RandomFaults is a plan that loses the request with probability p/2 and
// the reply with probability p/2, from a seeded generator.
func RandomFaults(seed uint64, p float64) func(*storage.Unit) Fault {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func(*storage.Unit) Fault {
		x := r.Float64()
		switch {
		case x < p/2:
			return LoseRequest
		case x < p:
			return LoseReply
		}
		return Deliver
	}
}

// SetPlan replaces the plan.
func (l *LossyBackend) SetPlan(plan func(u *storage.Unit) Fault) {
	l.mu.Lock()
	l.plan = plan
	l.mu.Unlock()
}

// Faults returns how many Apply calls were answered with an injected
// ErrUnknownOutcome.
func (l *LossyBackend) Faults() int { return int(l.faults.Load()) }

// Apply applies u, or not, as the plan says; see the type's documentation.
func (l *LossyBackend) Apply(ctx context.Context, u *storage.Unit) (uint64, error) {
	f := Deliver
	l.mu.Lock()
	if l.plan != nil {
		f = l.plan(u)
	}
	l.mu.Unlock()
	switch f {
	case LoseRequest:
		l.faults.Add(1)
		return 0, storage.ErrUnknownOutcome
	case LoseReply:
		// The reply of a failed unit is lost just the same.
		_, _ = l.Backend.Apply(ctx, u)
		l.faults.Add(1)
		return 0, storage.ErrUnknownOutcome
	}
	return l.Backend.Apply(ctx, u)
}

// RawContents is the wrapped backend's, if it is a storage.Inspector.
func (l *LossyBackend) RawContents(ctx context.Context) ([][]byte, error) {
	in, ok := l.Backend.(storage.Inspector)
	if !ok {
		return nil, errors.New("storagetest: the wrapped backend is not a storage.Inspector")
	}
	return in.RawContents(ctx)
}

var (
	_ storage.Backend   = (*LossyBackend)(nil)
	_ storage.Inspector = (*LossyBackend)(nil)
)
