package sandbox

import (
	"fmt"
	"io/fs"
	"os"
	"strconv"
)

// writeIDMaps maps the user namespace of pid as m says. The caller is root
// in the parent namespace, so setgroups stays allowed inside.
func writeIDMaps(pid int, m *idMap) error {
	for _, f := range []struct {
		file       string
		host, size int
	}{{"uid_map", m.uid, m.size}, {"gid_map", m.gid, m.gids()}} {
		path := "/proc/" + strconv.Itoa(pid) + "/" + f.file
		line := fmt.Sprintf("0 %d %d\n", f.host, f.size)
		if err := os.WriteFile(path, []byte(line), 0); err != nil {
			return &fs.PathError{Op: "write", Path: path, Err: err}
		}
	}
	return nil
}
