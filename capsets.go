package sandbox

import "slices"

// capSets are the five capability sets of an OCI spec's process, as
// capability numbers, for a definition read by FromSpec. A definition
// built by hand has one set (WithCapabilities) and none of these.
type capSets struct {
	bounding, effective, permitted, inheritable, ambient []int
}

func (c *capSets) clone() *capSets {
	if c == nil {
		return nil
	}
	return &capSets{slices.Clone(c.bounding), slices.Clone(c.effective), slices.Clone(c.permitted), slices.Clone(c.inheritable), slices.Clone(c.ambient)}
}

// capNumbers returns the numbers of the named capabilities, sorted, and
// the first unknown name.
func capNumbers(names []string) ([]int, string) {
	out := make([]int, 0, len(names))
	for _, n := range names {
		num, ok := capabilityNumber(n)
		if !ok {
			return nil, n
		}
		out = append(out, num)
	}
	slices.Sort(out)
	return slices.Compact(out), ""
}

// capNames returns the names of capability numbers.
func capNames(caps []int) []string {
	if len(caps) == 0 {
		return nil
	}
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = capabilityNames()[c]
	}
	return out
}
