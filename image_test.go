package sandbox_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
)

// TestImageRootValidate: a nil root and a nil *Image are configuration
// errors naming the root, as a zero Root was.
func TestImageRootValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		root sandbox.Root
	}{
		{"nil root", nil},
		{"nil image", (*sandbox.Image)(nil)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := sandbox.New(tt.root).Validate()
			var fe *sandbox.FieldError
			require.ErrorAs(t, err, &fe, "Validate of New(%s)", tt.name)
			assert.Equal(t, "root", fe.Field)
			assert.ErrorIs(t, err, sandbox.ErrInvalidConfig)
		})
	}
}
