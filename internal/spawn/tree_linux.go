package spawn

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// AttachTree appends the ops that attach the detached mount tree fromFD
// (from open_tree(OPEN_TREE_CLONE) in the parent) onto the directory or
// file open in register to, and close fromFD; r is a scratch register.
// Run it after pivot_root, with the sandbox's /proc mounted.
//
// What stays attached is a copy of the tree, cloned now: mountinfo lists
// a namespace's mounts in the order they were made (since Linux 6.8, by
// their unique IDs), so the parent's tree, made before the child started,
// would come before every mount the child made, its /proc included. A
// detached tree made in another mount namespace cannot be cloned (EINVAL),
// so the tree is attached, cloned (with its attributes and propagation),
// unmounted (through fromFD, which still names its root), and the clone
// attached in its place. s names the step in errors.
func (p *Program) AttachTree(fromFD int, to Reg, r Reg, s Step) {
	empty := p.str("")
	p.MoveMount(fromFD, to, s)
	p.add(op{nr: unix.SYS_OPEN_TREE, args: [6]uintptr{uintptr(fromFD), empty,
		unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC | unix.AT_EMPTY_PATH | unix.AT_RECURSIVE},
		regOut: int8(r) + 1}, Step{Op: "clone " + s.Op, Path: s.Path})
	// The sandbox's /proc, mounted before pivot_root, names the mount
	// fromFD is the root of, a directory's or a file's.
	p.Unmount(fmt.Sprint("/proc/self/fd/", fromFD), unix.MNT_DETACH)
	p.CloseFD(fromFD)
	p.add(op{nr: unix.SYS_MOVE_MOUNT, args: [6]uintptr{uintptr(r), empty, uintptr(to), empty,
		unix.MOVE_MOUNT_F_EMPTY_PATH | unix.MOVE_MOUNT_T_EMPTY_PATH}, regIn: 1<<0 | 1<<2}, s)
	p.Close(r)
}
