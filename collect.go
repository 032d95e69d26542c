package sandbox

import "context"

// Collect removes what sandboxes of crashed callers left on the host: a
// caller killed during Run cannot remove the run's cgroup (its processes die
// with it, its mounts and namespaces with them), so the cgroup stays behind,
// empty. Collect removes every such cgroup whose owner process is gone, in
// the v2 hierarchy or in each v1 hierarchy, and never one of a live owner.
// It is safe to call at any time, from any number of processes; a service
// might call it once at startup. It returns the joined errors of the
// cgroups it could not remove.
func Collect(ctx context.Context) error {
	return collect(ctx)
}
