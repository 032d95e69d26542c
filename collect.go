package sandbox

import "context"

// Collect removes what sandboxes of crashed callers left on the host. A
// caller killed during Run takes its sandboxes along (their processes die
// with it, their mounts and namespaces with them, and a bridge's veth with
// its namespace), but cannot remove what the kernel keeps: the run's
// cgroup, empty, and on a bridge the IP lease with the kernel DNAT entries
// it records. Collect removes each of those whose owner process is gone
// (cgroups in the v2 hierarchy or in each v1 hierarchy; leases on every
// bridge), and never one of a live owner. It is safe to call at any time,
// from any number of processes; a service might call it once at startup.
// It returns the joined errors of what it could not remove.
func Collect(ctx context.Context) error {
	return collect(ctx)
}
