package sandbox

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/sandboxkit/sandbox/internal/netsetup"
	"github.com/sandboxkit/sandbox/internal/state"
)

// ownerAlive reports whether the cgroup name's owner still runs. A name
// that does not parse is left alone.
func ownerAlive(name string) bool {
	parts := strings.SplitN(strings.TrimPrefix(name, cgroupPrefix), "-", 3)
	if len(parts) != 3 {
		return true
	}
	o, ok := state.ParseOwner(parts[0]+"-"+parts[1], '-')
	return !ok || o.Alive()
}

func collect(ctx context.Context) error {
	var errs []error
	var dead []string
	for _, pattern := range []string{cgroupRoot + "/" + cgroupPrefix + "*", cgroupRoot + "/*/" + cgroupPrefix + "*"} {
		dirs, err := filepath.Glob(pattern)
		if err != nil {
			return err
		}
		for _, dir := range dirs {
			if !ownerAlive(filepath.Base(dir)) {
				dead = append(dead, dir)
			}
		}
	}
	// Thawed first, in every hierarchy, before any is removed: a frozen
	// process holds each of its cgroups until the freezer lets it die.
	for _, dir := range dead {
		thawLeft(dir)
	}
	for _, dir := range dead {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		// rmdir fails on a cgroup that still has processes, so a
		// straggler is never cut loose.
		if err := removeCgroupDir(dir); err != nil {
			errs = append(errs, err)
		}
	}
	// IP leases of dead owners, with the NAT entries and veths they
	// record.
	if err := netsetup.Collect(ctx, ""); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("sandbox: collect: %w", errors.Join(errs...))
	}
	return nil
}
