package sandbox

import (
	"path"
	"strings"
)

// environ returns the sandbox's environment: the variables given with
// WithEnv, a later value for a key replacing an earlier one, plus PATH set
// to DefaultPath unless given.
func (s *Sandbox) environ() []string {
	seen := make(map[string]int, len(s.env)+1)
	var env []string
	for _, kv := range s.env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := seen[k]; ok {
			env[i] = kv
			continue
		}
		seen[k] = len(env)
		env = append(env, kv)
	}
	if _, ok := seen["PATH"]; !ok {
		env = append(env, "PATH="+DefaultPath)
	}
	return env
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
