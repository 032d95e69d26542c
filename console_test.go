package sandbox_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
)

func TestWithConsoleValidate(t *testing.T) {
	base := sandbox.New(sandbox.Dir("/srv/root"))
	tests := []struct {
		name  string
		sb    *sandbox.Sandbox
		field string // "" means valid
	}{
		{"ok", base.WithConsole("/run/console.sock", sandbox.WindowSize{Rows: 24, Cols: 80}), ""},
		{"no size", base.WithConsole("/run/console.sock", sandbox.WindowSize{}), ""},
		{"relative socket", base.WithConsole("console.sock", sandbox.WindowSize{}), "console"},
		{"with stdout", base.WithConsole("/run/console.sock", sandbox.WindowSize{}).WithStdout(&bytes.Buffer{}), "console"},
		{"with stdin", base.WithStdin(&bytes.Buffer{}).WithConsole("/run/console.sock", sandbox.WindowSize{}), "console"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.sb.Validate()
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			var fe *sandbox.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
			assert.ErrorIs(t, err, sandbox.ErrInvalidConfig)
		})
	}
	_, err := sandbox.NewPool(base.WithConsole("/run/console.sock", sandbox.WindowSize{}), 1)
	var fe *sandbox.FieldError
	require.ErrorAs(t, err, &fe, "a pool's sandboxes have no console")
	assert.Equal(t, "console", fe.Field)
}
