package oci

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Leftovers returns the JSON paths ("linux.sysctl", "mounts[2].uidMappings")
// of every field of v that is set: v is what remains of a spec once the
// fields a reader handled were cleared, so each path is a field it would
// otherwise ignore. A field is set when its JSON value is neither null, nor
// false, nor zero, nor an empty string, array or object.
func Leftovers(v any) ([]string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var tree any
	if err := json.Unmarshal(b, &tree); err != nil {
		return nil, err
	}
	var out []string
	walk(tree, "", &out)
	return out, nil
}

func walk(v any, at string, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			walk(x[k], join(at, k), out)
		}
	case []any:
		for i, e := range x {
			walk(e, fmt.Sprintf("%s[%d]", at, i), out)
		}
	case nil:
	case bool:
		if x {
			*out = append(*out, at)
		}
	case float64:
		if x != 0 {
			*out = append(*out, at)
		}
	case string:
		if x != "" {
			*out = append(*out, at)
		}
	default:
		*out = append(*out, at)
	}
}

func join(at, k string) string {
	if at == "" {
		return k
	}
	return strings.Join([]string{at, k}, ".")
}
