package seccomp

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestActionString(t *testing.T) {
	tests := []struct {
		name string
		give Action
		want string
	}{
		{"errno", ActErrno, "SCMP_ACT_ERRNO"},
		{"allow", ActAllow, "SCMP_ACT_ALLOW"},
		{"kill process", ActKillProcess, "SCMP_ACT_KILL_PROCESS"},
		{"trap", ActTrap, "SCMP_ACT_TRAP"},
		{"log", ActLog, "SCMP_ACT_LOG"},
		{"unknown", Action(77), "Action(77)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.give.String())
		})
	}
}

func TestOpString(t *testing.T) {
	tests := []struct {
		name string
		give Op
		want string
	}{
		{"equal", OpEqual, "SCMP_CMP_EQ"},
		{"not equal", OpNotEqual, "SCMP_CMP_NE"},
		{"masked equal", OpMaskedEqual, "SCMP_CMP_MASKED_EQ"},
		{"unknown", Op(9), "Op(9)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.give.String())
		})
	}
}
