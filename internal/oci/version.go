package oci

import (
	"fmt"
	"strconv"
	"strings"
)

// CheckVersion returns why ociVersion is not one this runtime takes, or
// "". It takes 1.0.0 through 1.3.x, with or without a pre-release or build
// suffix ("1.0.2-dev", which containerd 1.6 sends, or "1.1.0-rc.1").
func CheckVersion(v string) string {
	core, _, _ := strings.Cut(v, "+")
	core, _, _ = strings.Cut(core, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return fmt.Sprintf("must be a version MAJOR.MINOR.PATCH, such as %q", "1.2.0")
	}
	var n [3]int
	for i, p := range parts {
		x, err := strconv.Atoi(p)
		if err != nil || x < 0 || (len(p) > 1 && p[0] == '0') {
			return fmt.Sprintf("must be a version MAJOR.MINOR.PATCH, such as %q", "1.2.0")
		}
		n[i] = x
	}
	if n[0] != 1 || n[1] > 3 {
		return "must be 1.0.0 through 1.3.x"
	}
	return ""
}
