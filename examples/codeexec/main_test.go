package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox/internal/testutil"
)

// newServer serves a codeexec service (pools of 2, or cold) on 127.0.0.1
// until t ends.
func newServer(t *testing.T, cold bool) *httptest.Server {
	t.Helper()
	testutil.RequireRoot(t)
	for _, tool := range []string{"python3", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.SkipOrFail(t, "no "+tool+" on the host; run: apt-get install python3 gcc")
		}
	}
	svc, err := newService(2, cold)
	require.NoError(t, err)
	srv := httptest.NewServer(svc)
	t.Cleanup(func() {
		srv.Close()
		assert.NoError(t, svc.Close())
		assert.Empty(t, testutil.OwnCgroups(t), "the service's Close leaves no sandbox")
	})
	return srv
}

// post sends body to /run and decodes the reply into a map.
func post(t *testing.T, ctx context.Context, srv *httptest.Server, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+"/run", strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out
}

func program(lang, source, stdin string) string {
	b, _ := json.Marshal(request{Language: lang, Source: source, Stdin: stdin})
	return string(b)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestServiceRunsPrograms(t *testing.T) {
	for _, cold := range []bool{false, true} {
		t.Run(map[bool]string{false: "pool", true: "cold"}[cold], func(t *testing.T) {
			srv := newServer(t, cold)
			ctx := testCtx(t)
			for _, tt := range []struct {
				name, lang, source, stdin, stdout string
				exit                              float64
			}{
				{"python", "python", "import sys\nprint(sum(map(int, sys.stdin.read().split())))", "1 2 3", "6\n", 0},
				{"c", "c", "#include <stdio.h>\nint main(void) { int a, b; scanf(\"%d %d\", &a, &b); printf(\"%d\\n\", a * b); return 3; }", "6 7", "42\n", 3},
				{"sh", "sh", "read x; echo \"got $x as $(id -u)\"", "hi", "got hi as 65534\n", 0},
			} {
				status, rep := post(t, ctx, srv, program(tt.lang, tt.source, tt.stdin))
				require.Equal(t, http.StatusOK, status, "%s: %v", tt.name, rep)
				assert.Equal(t, "run", rep["stage"], tt.name)
				assert.Equal(t, tt.stdout, rep["stdout"], "%s: %v", tt.name, rep)
				assert.Equal(t, tt.exit, rep["exit_code"], tt.name)
				assert.Greater(t, rep["wall_ms"], 0.0, tt.name)
				assert.Greater(t, rep["memory_peak_bytes"], 0.0, tt.name)
			}
			status, rep := post(t, ctx, srv, program("c", "int main() { return x; }", ""))
			require.Equal(t, http.StatusOK, status)
			assert.Equal(t, "compile", rep["stage"])
			assert.Contains(t, rep["stderr"], "'x' undeclared")
		})
	}
}

func TestServiceRejectsBadInput(t *testing.T) {
	srv := newServer(t, false)
	ctx := testCtx(t)
	for _, tt := range []struct {
		name, body string
		status     int
		message    string
	}{
		{"unknown language", program("cobol", "DISPLAY 'HI'.", ""), http.StatusBadRequest, "unknown language"},
		{"bad JSON", `{"language": "python", `, http.StatusBadRequest, "bad JSON"},
		{"unknown field", `{"language": "python", "source": "print(1)", "timeout": 100}`, http.StatusBadRequest, "unknown field"},
		{"empty source", program("python", "  ", ""), http.StatusBadRequest, "empty source"},
		{"source too large", program("python", strings.Repeat("#", maxSource+1), ""), http.StatusRequestEntityTooLarge, "source of"},
		{"request too large", program("python", "print(1)", strings.Repeat("x", maxBody)), http.StatusRequestEntityTooLarge, "request larger"},
	} {
		status, rep := post(t, ctx, srv, tt.body)
		assert.Equal(t, tt.status, status, "%s: %v", tt.name, rep)
		assert.Contains(t, rep["error"], tt.message, tt.name)
	}
	resp, err := http.Get(srv.URL + "/run")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

func TestServiceSurvivesHostilePrograms(t *testing.T) {
	srv := newServer(t, false)
	ctx := testCtx(t)
	for _, tt := range []struct {
		name, lang, source string
		check              func(t *testing.T, rep map[string]any)
	}{
		{"fork bomb", "sh", "bomb() { bomb | bomb & }; bomb; sleep 1; echo alive", func(t *testing.T, rep map[string]any) {
			assert.Contains(t, rep["stderr"], "fork", "the pids limit refuses the bomb's forks")
		}},
		{"memory hog", "python", "x = bytearray(1 << 30)", func(t *testing.T, rep map[string]any) {
			assert.True(t, rep["killed_for_memory"].(bool) || strings.Contains(rep["stderr"].(string), "MemoryError"), "%v", rep)
		}},
		{"memory hog in C", "c", "#include <stdlib.h>\n#include <string.h>\nint main(void) { for (;;) { char *p = malloc(1 << 20); if (p) memset(p, 1, 1 << 20); } }", func(t *testing.T, rep map[string]any) {
			assert.Equal(t, true, rep["killed_for_memory"], "%v", rep)
		}},
		{"endless output", "python", "while True: print('spam' * 100)", func(t *testing.T, rep map[string]any) {
			assert.Equal(t, true, rep["killed_for_output"], "%v", rep)
			assert.Len(t, rep["stdout"], maxOutput)
		}},
		{"endless loop", "c", "int main(void) { for (;;); }", func(t *testing.T, rep map[string]any) {
			assert.Equal(t, true, rep["killed_for_time"], "%v", rep)
			assert.Equal(t, "killed", rep["signal"])
		}},
		{"network", "python", "import socket\nfor addr in [('1.1.1.1', 80), ('127.0.0.1', " + srv.URL[strings.LastIndex(srv.URL, ":")+1:] + ")]:\n    try:\n        socket.create_connection(addr, timeout=2)\n        print('reached', addr)\n    except OSError as e:\n        print('refused', e.errno)", func(t *testing.T, rep map[string]any) {
			assert.NotContains(t, rep["stdout"], "reached", "neither the internet nor the service's own port: %v", rep)
			assert.Equal(t, "refused 101\nrefused 111\n", rep["stdout"])
		}},
	} {
		status, rep := post(t, ctx, srv, program(tt.lang, tt.source, ""))
		require.Equal(t, http.StatusOK, status, "%s: %v", tt.name, rep)
		t.Run(tt.name, func(t *testing.T) { tt.check(t, rep) })
	}
	// After all that, the service still serves.
	status, rep := post(t, ctx, srv, program("python", "print('fine')", ""))
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "fine\n", rep["stdout"])
}

func TestServiceSurvivesAClientThatLeaves(t *testing.T) {
	srv := newServer(t, false)
	ctx, cancel := context.WithTimeout(testCtx(t), 300*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+"/run", bytes.NewReader([]byte(program("sh", "sleep 4; echo late", ""))))
	require.NoError(t, err)
	start := time.Now()
	_, err = http.DefaultClient.Do(req)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	// The run is killed with its request, long before its 4 s: its
	// sandbox goes, and the service serves the next.
	require.Eventually(t, func() bool { return len(testutil.OwnCgroups(t)) <= 3 }, 3*time.Second, 10*time.Millisecond,
		"the left client's sandbox is released (only the two pools' 3 prepared remain): %v", testutil.OwnCgroups(t))
	assert.Less(t, time.Since(start), 3*time.Second)
	status, rep := post(t, testCtx(t), srv, program("sh", "echo next", ""))
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "next\n", rep["stdout"])
}
