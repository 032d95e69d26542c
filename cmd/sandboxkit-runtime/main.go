// Command sandboxkit-runtime is an OCI runtime with runc's command line,
// over the sandbox package: containerd's shim, or the runtime-tools
// conformance suite, drives it as it drives runc.
//
//	sandboxkit-runtime [--root DIR] [--log FILE] [--log-format text|json] create --bundle DIR [--pid-file FILE] [--console-socket SOCK] ID
//	sandboxkit-runtime start ID
//	sandboxkit-runtime state ID
//	sandboxkit-runtime kill [--all] ID [SIGNAL]
//	sandboxkit-runtime delete [--force] ID
//	sandboxkit-runtime run --bundle DIR [--detach] ID
//	sandboxkit-runtime exec [--process FILE | --tty --cwd DIR --env K=V --user UID[:GID]] [--detach] [--pid-file FILE] [--console-socket SOCK] ID [COMMAND ARG...]
//	sandboxkit-runtime list [--format json]
//	sandboxkit-runtime ps [--format json] ID
//	sandboxkit-runtime pause|resume ID
//	sandboxkit-runtime features | spec [--bundle DIR]
//
// It needs root. A container's state lives under --root
// (/run/sandboxkit-runtime by default), so that the next invocation finds
// it; the container outlives the invocation that created it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	code, err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		os.Exit(1)
	}
	os.Exit(code)
}

// globals are runc's flags before the subcommand.
type globals struct {
	root          string
	log           io.Writer
	jsonLog       bool
	systemdCgroup bool
	debug         bool
	stdout        io.Writer
}

// errorf logs err as runc does: a line on stderr, and with --log a line in
// the log file (JSON with level, msg and time under --log-format json),
// whose last error line containerd reports.
func (g *globals) logError(stderr io.Writer, err error) {
	fmt.Fprintln(stderr, "sandboxkit-runtime:", err)
	if g.log == nil {
		return
	}
	if g.jsonLog {
		b, _ := json.Marshal(map[string]string{"level": "error", "msg": err.Error(), "time": time.Now().UTC().Format(time.RFC3339Nano)})
		fmt.Fprintf(g.log, "%s\n", b)
		return
	}
	fmt.Fprintf(g.log, "time=%q level=error msg=%q\n", time.Now().UTC().Format(time.RFC3339Nano), err.Error())
}

// debugf logs a debug line, with --debug only: to the log, else stderr.
func (g *globals) debugf(format string, args ...any) {
	if !g.debug {
		return
	}
	msg := fmt.Sprintf(format, args...)
	w := g.log
	if w == nil {
		w = os.Stderr
	}
	if g.jsonLog {
		b, _ := json.Marshal(map[string]string{"level": "debug", "msg": msg, "time": time.Now().UTC().Format(time.RFC3339Nano)})
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	fmt.Fprintf(w, "time=%q level=debug msg=%q\n", time.Now().UTC().Format(time.RFC3339Nano), msg)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	g := &globals{stdout: stdout}
	fs := flag.NewFlagSet("sandboxkit-runtime", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&g.root, "root", defaultRoot, "directory of the containers' state")
	logPath := fs.String("log", "", "file to log errors to")
	logFormat := fs.String("log-format", "text", "text or json")
	fs.BoolVar(&g.systemdCgroup, "systemd-cgroup", false, "cgroupsPath is slice:prefix:name (needs systemd: refused)")
	fs.BoolVar(&g.debug, "debug", false, "log more")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	if *logPath != "" {
		f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintln(stderr, "sandboxkit-runtime:", err)
			return 1, err
		}
		defer f.Close()
		g.log = f
	}
	switch *logFormat {
	case "json":
		g.jsonLog = true
	case "text":
	default:
		err := fmt.Errorf("--log-format %s: must be text or json", *logFormat)
		g.logError(stderr, err)
		return 2, err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		err := errors.New("no command: create, start, state, kill, delete, run, exec, list, ps, pause, resume, events, update, features, spec")
		g.logError(stderr, err)
		return 2, err
	}
	code, err := g.command(ctx, rest[0], rest[1:], stderr)
	if err != nil {
		g.logError(stderr, err)
	}
	return code, err
}
