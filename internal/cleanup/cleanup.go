// Package cleanup keeps the undo steps of a half-built sandbox, so that
// every error path releases exactly what was acquired, in reverse order.
package cleanup

import (
	"context"
	"errors"
)

// Stack is a list of undo functions run last-in, first-out. The zero value
// is empty and ready to use. A Stack is not safe for concurrent use.
type Stack struct {
	undo []func(context.Context) error
}

// Push adds f, to be run before everything pushed earlier.
func (s *Stack) Push(f func(context.Context) error) { s.undo = append(s.undo, f) }

// PushErr adds f, which needs no context.
func (s *Stack) PushErr(f func() error) {
	s.Push(func(context.Context) error { return f() })
}

// Unwind runs every undo function, last pushed first, even after one
// fails, empties the stack and returns the joined errors.
func (s *Stack) Unwind(ctx context.Context) error {
	var errs []error
	for i := len(s.undo) - 1; i >= 0; i-- {
		errs = append(errs, s.undo[i](ctx))
	}
	s.undo = nil
	return errors.Join(errs...)
}

// Take returns a new Stack holding s's undo functions and empties s: the
// caller hands the resources to a longer-lived owner.
func (s *Stack) Take() *Stack {
	t := &Stack{undo: s.undo}
	s.undo = nil
	return t
}
