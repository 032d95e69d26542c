package testharness

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxkit/sandbox"
	"github.com/sandboxkit/sandbox/sandboxtest"
)

// testBridge returns a bridge for this test's sandboxes, removed when the
// test ends.
func testBridge(t *testing.T, subnet string) sandbox.Network {
	n := sandbox.Bridge(sandbox.BridgeName("harness0"), sandbox.Subnet(netip.MustParsePrefix(subnet)))
	t.Cleanup(func() { sandbox.RemoveBridge(context.Background(), n) })
	return n
}

// readFromTar returns the file name's data in the tar stream r.
func readFromTar(t *testing.T, r io.Reader, name string) string {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		require.NoError(t, err, "looking for %s in the copy", name)
		if h.Name == name {
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			return string(b)
		}
	}
}

func TestWebServer(t *testing.T) {
	sandboxtest.Requirements(t)
	n := testBridge(t, "10.78.0.0/24")
	sb := sandbox.New(sandbox.HostRoot()).
		WithNetwork(n).WithPublish(0, 8080). // a free host port on 127.0.0.1
		WithMemory(64<<20).WithPids(32).
		WithTmpfs("/srv", 16<<20).
		WithFile("/srv/index.html", []byte("hello from the sandbox\n"), 0o644)
	in := sandboxtest.Start(t, sb, "busybox", "httpd", "-f", "-p", "8080", "-h", "/srv")
	sandboxtest.WaitReady(t, in, sandbox.ForPort(8080), sandbox.ForHTTP(8080, "/"))

	// The host reaches it through its published port, and at its own
	// address on the bridge.
	for _, url := range []string{
		fmt.Sprintf("http://127.0.0.1:%d/", in.Ports()[0].HostPort),
		fmt.Sprintf("http://%s/", netip.AddrPortFrom(in.IP(), 8080)),
	} {
		resp, err := http.Get(url)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, "hello from the sandbox\n", string(body), url)
	}

	// Exec into it, and copy what it wrote out.
	sandboxtest.Exec(t, in, "sh", "-c", "date > /srv/exec.txt; echo written by exec >> /srv/exec.txt")
	rc, err := in.CopyFrom(t.Context(), "/srv")
	require.NoError(t, err)
	defer rc.Close()
	assert.Contains(t, readFromTar(t, rc, "srv/exec.txt"), "written by exec")
}

// postgresBin returns the directory of the host's PostgreSQL programs.
func postgresBin(t *testing.T) string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(dirs) == 0 {
		skipOrFail(t, "no PostgreSQL on the host; run: apt-get install postgresql")
	}
	return filepath.Dir(dirs[len(dirs)-1])
}

// postgresUser returns the host's postgres user and group (PostgreSQL
// refuses to run as root).
func postgresUser(t *testing.T) (uid, gid int) {
	out, err := exec.Command("id", "-u", "postgres").Output()
	if err != nil {
		skipOrFail(t, "no postgres user on the host; run: apt-get install postgresql")
	}
	g, err := exec.Command("id", "-g", "postgres").Output()
	require.NoError(t, err)
	fmt.Sscan(string(out), &uid)
	fmt.Sscan(string(g), &gid)
	return uid, gid
}

func TestPostgres(t *testing.T) {
	sandboxtest.Requirements(t)
	bin := postgresBin(t)
	uid, gid := postgresUser(t)
	n := testBridge(t, "10.79.0.0/24")
	sb := sandbox.New(sandbox.HostRoot()).
		WithNetwork(n).WithPublish(0, 5432).
		WithUser(uid, gid).WithWorkdir("/pgdata"). // made for the user
		WithMemory(512 << 20).WithPids(128).
		WithEnv("PATH=" + bin + ":" + sandbox.DefaultPath)
	// A fresh cluster per test; the proxy of the published port connects
	// from the bridge's gateway, which pg_hba.conf must let in.
	in := sandboxtest.Start(t, sb, "sh", "-c", `initdb -D /pgdata/db --auth=trust -U postgres >/dev/null &&
		echo "host all all 0.0.0.0/0 trust" >> /pgdata/db/pg_hba.conf &&
		exec postgres -D /pgdata/db -k /pgdata -c listen_addresses='*'`)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	require.NoError(t, in.WaitReady(ctx,
		sandbox.ForOutput("database system is ready to accept connections"),
		sandbox.ForPort(5432),
		sandbox.ForExec("pg_isready", "-h", "/pgdata", "-U", "postgres"),
	))

	// The host talks to it through the published port with its own psql.
	psql := exec.CommandContext(ctx, filepath.Join(bin, "psql"), "-h", "127.0.0.1", "-p", fmt.Sprint(in.Ports()[0].HostPort),
		"-U", "postgres", "-c", "create table answer (x int); insert into answer values (42)")
	out, err := psql.CombinedOutput()
	require.NoError(t, err, "%s", out)

	// An exec inside sees the same database over its Unix socket.
	got := sandboxtest.Exec(t, in, "psql", "-h", "/pgdata", "-U", "postgres", "-tAc", "select x from answer")
	assert.Equal(t, "42\n", got)

	rc, err := in.CopyFrom(ctx, "/pgdata/db/PG_VERSION")
	require.NoError(t, err)
	defer rc.Close()
	assert.Equal(t, filepath.Base(filepath.Dir(bin)), strings.TrimSpace(readFromTar(t, rc, "PG_VERSION")))
}

// skipOrFail skips the test, or fails it under CI=true, where every test
// must run.
func skipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}
