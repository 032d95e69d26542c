//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// machine describes where the benchmark ran.
type machine struct {
	Kernel   string            `json:"kernel"`
	CPU      string            `json:"cpu"`
	Cores    int               `json:"cores"`
	Go       string            `json:"go"`
	Cgroups  string            `json:"cgroups"`
	Versions map[string]string `json:"versions"`
}

// describeMachine measures the machine and the contenders' versions.
func describeMachine(busybox string) machine {
	m := machine{
		Kernel:   "unknown",
		CPU:      cpuModel(),
		Cores:    runtime.NumCPU(),
		Go:       runtime.Version(),
		Cgroups:  "v1 only: " + cgroupRoot + " rebuilt without " + unifiedDir + " in the benchmark's mount namespace",
		Versions: map[string]string{},
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Version[:])
	}
	for _, bin := range []string{"runc", "crun", "bwrap", "unshare"} {
		m.Versions[bin] = version(bin)
	}
	out, _ := exec.Command(busybox).Output() // prints usage and exits 0 or 1
	m.Versions["busybox"], _, _ = strings.Cut(string(out), "\n")
	return m
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// result is one contender's line of the JSON output. Times are in
// nanoseconds.
type result struct {
	Name      string  `json:"name"`
	Command   string  `json:"command"`
	Skipped   string  `json:"skipped,omitempty"`
	Median    int64   `json:"median_ns,omitempty"`
	P10       int64   `json:"p10_ns,omitempty"`
	P90       int64   `json:"p90_ns,omitempty"`
	Ratio     float64 `json:"median_vs_sandboxkit,omitempty"`
	Deletes   int     `json:"deletes_needed,omitempty"`
	SamplesNS []int64 `json:"samples_ns,omitempty"`
}

// report prints the results as a markdown table, as JSON, or both.
func report(w io.Writer, o options, m machine, cs []*contender) error {
	var results []result
	var base float64
	for _, c := range cs {
		r := result{Name: c.name, Command: c.command, Skipped: c.skipped, Deletes: c.deletes}
		if len(c.samples) > 0 {
			s := slices.Clone(c.samples)
			slices.Sort(s)
			r.Median, r.P10, r.P90 = quantile(s, 0.5), quantile(s, 0.1), quantile(s, 0.9)
			for _, d := range c.samples {
				r.SamplesNS = append(r.SamplesNS, int64(d))
			}
			if c == cs[0] { // the library's own: Run, or Exec with -exec
				base = float64(r.Median)
			}
		}
		results = append(results, r)
	}
	for i := range results {
		if base > 0 && results[i].Median > 0 {
			results[i].Ratio = math.Round(float64(results[i].Median)/base*100) / 100
		}
	}
	if o.json != "" {
		doc := struct {
			Machine    machine  `json:"machine"`
			Rounds     int      `json:"rounds"`
			Warmup     int      `json:"warmup"`
			Seed       uint64   `json:"seed"`
			Contenders []result `json:"contenders"`
		}{m, o.rounds, o.warmup, o.seed, results}
		b, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return err
		}
		b = append(b, '\n')
		if o.json == "-" {
			_, err := w.Write(b)
			return err
		}
		if err := os.WriteFile(o.json, b, 0o644); err != nil {
			return err
		}
	}

	what := "busybox true"
	if o.exec {
		what = "busybox true exec'd into a sandbox that runs (-exec)"
	}
	fmt.Fprintf(w, "%s, %d rounds after %d warm-up rounds; every contender once per round, in a rotating, reshuffled order (-seed %d)\n\n", what, o.rounds, o.warmup, o.seed)
	fmt.Fprintf(w, "- kernel: %s\n- CPU: %s, %d cores\n- cgroups: %s\n- %s\n", m.Kernel, m.CPU, m.Cores, m.Cgroups, m.Go)
	for _, k := range []string{"runc", "crun", "bwrap", "unshare", "busybox"} {
		fmt.Fprintf(w, "- %s: %s\n", k, m.Versions[k])
	}
	fmt.Fprintln(w, "\n| contender | median | p10 | p90 | median vs sandboxkit |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: |")
	for _, r := range results {
		if r.Skipped != "" {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f× |\n", r.Name, ms(r.Median), ms(r.P10), ms(r.P90), r.Ratio)
	}
	for _, r := range results {
		if r.Skipped != "" {
			fmt.Fprintf(w, "\n%s did not run: %s\n", r.Name, r.Skipped)
		}
		if r.Deletes > 0 {
			fmt.Fprintf(w, "\n%s left its state behind after %d runs; the time of deleting it is included\n", r.Name, r.Deletes)
		}
	}
	return nil
}

// quantile returns the q-quantile of the sorted s, interpolating linearly
// between the closest ranks.
func quantile(s []time.Duration, q float64) int64 {
	pos := q * float64(len(s)-1)
	lo := int(pos)
	if lo+1 >= len(s) {
		return int64(s[len(s)-1])
	}
	frac := pos - float64(lo)
	return int64(float64(s[lo]) + frac*float64(s[lo+1]-s[lo]))
}

// ms formats ns nanoseconds as milliseconds.
func ms(ns int64) string {
	return fmt.Sprintf("%.2f ms", float64(ns)/1e6)
}
