package cleanup_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/sandboxkit/sandbox/internal/cleanup"
)

func TestUnwindRunsInReverseAndJoinsErrors(t *testing.T) {
	var order []int
	errA := errors.New("a failed")
	var s cleanup.Stack
	s.PushErr(func() error { order = append(order, 1); return nil })
	s.PushErr(func() error { order = append(order, 2); return errA })
	s.PushErr(func() error { order = append(order, 3); return nil })

	err := s.Unwind(context.Background())
	assert.Equal(t, []int{3, 2, 1}, order, "Unwind must run the last pushed first and not stop at an error")
	assert.ErrorIs(t, err, errA)
	assert.NoError(t, s.Unwind(context.Background()), "a second Unwind has nothing left to run")
	assert.Equal(t, []int{3, 2, 1}, order)
}

func TestTakeMovesOwnership(t *testing.T) {
	ran := false
	var s cleanup.Stack
	s.PushErr(func() error { ran = true; return nil })
	owned := s.Take()
	assert.NoError(t, s.Unwind(context.Background()))
	assert.False(t, ran, "Unwind of the emptied stack must not run what Take moved")
	assert.NoError(t, owned.Unwind(context.Background()))
	assert.True(t, ran)
}
