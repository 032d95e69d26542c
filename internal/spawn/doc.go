// Package spawn starts a process in new namespaces and runs a prepared
// program of raw system calls in it before it executes the payload.
//
// The child is created with clone3(CLONE_VM|CLONE_VFORK) and never runs Go
// code that could allocate, grow its stack or take a lock: it walks a list of
// system calls whose arguments the parent has already laid out in memory, in
// the manner of the standard library's forkAndExecInChild. This keeps a
// sandbox start at the cost of one clone and the kernel work it asks for,
// with no second Go runtime to boot. The parent's calling thread is
// suspended until the child calls execve or exits, so by the time [Start]
// returns the payload is running, or the program failed and [Start] says
// which step failed and why.
package spawn
