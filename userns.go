package sandbox

// DefaultIDMapBase and DefaultIDMapSize are the host IDs that
// WithUserNamespace maps the sandbox's users and groups onto: IDs 0 to
// 65535 inside are 100000 to 165535 outside.
const (
	DefaultIDMapBase = 100000
	DefaultIDMapSize = 65536
)

// idMap maps sandbox IDs [0, size) onto host IDs [uid or gid, +size).
type idMap struct {
	uid, gid, size int
	gidSize        int // an OCI spec's gid mapping of another size (FromSpec); 0: size
}

// gids returns how many group IDs the map maps.
func (m *idMap) gids() int {
	if m.gidSize > 0 {
		return m.gidSize
	}
	return m.size
}

// WithUserNamespace returns a copy of s that runs in its own user
// namespace: root inside is the unprivileged host user DefaultIDMapBase,
// and every other ID inside maps into the range above it (see WithIDMap to
// choose the range). Its capabilities then count only inside the sandbox,
// and files it creates in a writable bind belong to the mapped IDs on the
// host. Files of the root that belong to host IDs outside the range (such
// as the host's own root) appear owned by nobody and cannot be changed,
// even by the sandbox's root; /tmp, tmpfs mounts and WithFile files are
// its own. With a Bridge network, see Bridge for what the sandbox's root
// may do with its network. Starting such a sandbox copies the caller's
// page tables, which costs more for a large heap. The last call wins.
func (s *Sandbox) WithUserNamespace() *Sandbox {
	return s.WithIDMap(DefaultIDMapBase, DefaultIDMapBase, DefaultIDMapSize)
}

// WithIDMap returns a copy of s in its own user namespace (see
// WithUserNamespace) in which sandbox user IDs 0 to size-1 are host IDs
// hostUID to hostUID+size-1, and group IDs likewise from hostGID. hostUID
// and hostGID must be positive (mapping to host root would defeat the
// purpose) and size at least 1. The last call wins.
func (s *Sandbox) WithIDMap(hostUID, hostGID, size int) *Sandbox {
	c := s.clone()
	ok := true
	if hostUID <= 0 || hostUID >= 1<<32-1 {
		c.invalid("id map", hostUID, "host uid must be between 1 and 4294967294")
		ok = false
	}
	if hostGID <= 0 || hostGID >= 1<<32-1 {
		c.invalid("id map", hostGID, "host gid must be between 1 and 4294967294")
		ok = false
	}
	if size < 1 || size > 1<<32-1-max(hostUID, hostGID) {
		c.invalid("id map", size, "size must be at least 1 and keep the range below 2^32-1")
		ok = false
	}
	if ok {
		c.userns = &idMap{uid: hostUID, gid: hostGID, size: size}
	}
	return c
}

// checkUserNamespace reports a sandbox user outside the mapped range.
func (s *Sandbox) checkUserNamespace() []*FieldError {
	if s.userns == nil {
		return nil
	}
	var problems []*FieldError
	if s.uid >= s.userns.size {
		problems = append(problems, &FieldError{Field: "uid", Value: s.uid, Reason: "must be inside the user namespace's ID map"})
	}
	if s.gid >= s.userns.gids() {
		problems = append(problems, &FieldError{Field: "gid", Value: s.gid, Reason: "must be inside the user namespace's ID map"})
	}
	return problems
}
