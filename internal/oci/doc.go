// Package oci holds what sandboxkit's OCI runtime needs beyond the
// sandbox package: the runtime-spec versions it accepts, the fields of a
// spec it leaves unhandled, signal names, the runtime's state directory,
// hooks and the features document. It has no sandbox of its own: the
// sandbox package builds and runs every container.
package oci
