package sandbox

import (
	"path"
	"slices"
	"strings"
)

// environ returns the sandbox's environment: an image's variables, then
// those given with WithEnv, a later value for a key replacing an earlier
// one, plus PATH set to DefaultPath unless given.
func (s *Sandbox) environ() []string {
	env := mergeEnv(mergeEnv(nil, s.baseEnv()), s.env)
	if !hasKey(env, "PATH") {
		env = append(env, "PATH="+DefaultPath)
	}
	return env
}

// mergeEnv returns base with the "KEY=value" entries of add set in it: a
// key's later value replaces its earlier one in place, a new key comes
// last.
func mergeEnv(base, add []string) []string {
	env := slices.Clone(base)
	seen := make(map[string]int, len(env)+len(add))
	for i, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		seen[k] = i
	}
	for _, kv := range add {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := seen[k]; ok {
			env[i] = kv
			continue
		}
		seen[k] = len(env)
		env = append(env, kv)
	}
	return env
}

// hasKey reports whether env sets key.
func hasKey(env []string, key string) bool {
	return slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
}

// checkEnvEntry returns why e is not a "KEY=value" entry, or "".
func checkEnvEntry(e string) string {
	k, _, ok := strings.Cut(e, "=")
	switch {
	case !ok || k == "":
		return `must be "KEY=value"`
	case strings.IndexByte(e, 0) >= 0:
		return "must not contain a NUL byte"
	}
	return ""
}

// checkID returns why id cannot be a user or group ID, or "".
func checkID(id int) string {
	if id < 0 || id >= 1<<32-1 {
		return "must be between 0 and 4294967294"
	}
	return ""
}

// commandPaths returns where to look for the command name: name itself
// when it contains a slash, otherwise name in each directory of PATH, in
// order, as execvp does.
func commandPaths(name string, env []string) []string {
	if strings.Contains(name, "/") {
		return []string{name}
	}
	var paths []string
	pathVar := pathOf(env)
	for _, dir := range strings.Split(pathVar, ":") {
		if dir == "" {
			dir = "."
		}
		paths = append(paths, path.Join(dir, name))
	}
	return paths
}

// pathOf returns the PATH of the environment env, or DefaultPath.
func pathOf(env []string) string {
	pathVar := DefaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	return pathVar
}
