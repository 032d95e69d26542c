// Package testharness shows the pattern a Go test copies to run a server
// in a sandbox: start it on a bridge with a published port, wait until it
// is ready, talk to it from the host, exec into it, copy a file out, and
// let t.Cleanup close it. See harness_linux_test.go; the tests need root
// (they skip without it, and fail under CI=true).
//
//	go test ./examples/testharness
//
// TestWebServer runs busybox's httpd from the host's root; TestPostgres
// runs the host's PostgreSQL (Debian's postgresql package), one database
// per test, with its own address.
package testharness
