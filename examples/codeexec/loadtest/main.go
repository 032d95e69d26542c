// Command loadtest sends N programs to a codeexec service on this machine
// with at most C in flight, and prints the latency distribution and the
// throughput. It needs no privileges; the service does.
//
//	sudo go run ./examples/codeexec -addr 127.0.0.1:8080 &
//	go run ./examples/codeexec/loadtest -url http://127.0.0.1:8080 -n 2000 -c 4
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"sync"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	if stop(); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	target := fs.String("url", "http://127.0.0.1:8080", "the service, on this machine")
	n := fs.Int("n", 1000, "requests to send")
	c := fs.Int("c", 2, "requests in flight at most")
	lang := fs.String("lang", "sh", "language of the program")
	source := fs.String("source", "echo hello", "the program")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*target)
	if err != nil {
		return err
	}
	if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" && h != "::1" {
		return fmt.Errorf("-url %s: the load test sends only to this machine (127.0.0.1)", *target)
	}
	if *n < 1 || *c < 1 {
		return errors.New("-n and -c must be at least 1")
	}
	body, err := json.Marshal(map[string]string{"language": *lang, "source": *source})
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *c}}
	send := func() (time.Duration, error) {
		start := time.Now()
		req, err := http.NewRequestWithContext(ctx, "POST", u.JoinPath("/run").String(), bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var rep struct {
			ExitCode int    `json:"exit_code"`
			Error    string `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusOK || rep.ExitCode != 0 {
			return 0, fmt.Errorf("status %d, exit %d: %s", resp.StatusCode, rep.ExitCode, rep.Error)
		}
		return time.Since(start), nil
	}
	if _, err := send(); err != nil { // warm the connection, check the service
		return err
	}

	jobs := make(chan struct{}, *n)
	for range *n {
		jobs <- struct{}{}
	}
	close(jobs)
	var mu sync.Mutex
	var lat []time.Duration
	var errs []error
	var wg sync.WaitGroup
	start := time.Now()
	for range *c {
		wg.Go(func() {
			for range jobs {
				d, err := send()
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	total := time.Since(start)
	if len(lat) == 0 {
		return fmt.Errorf("every request failed: %w", errors.Join(errs...))
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration {
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(10 * time.Microsecond)
	}
	fmt.Fprintf(out, "%d requests, %d in flight at most, %d failed: %.1f requests/s\n", *n, *c, len(errs), float64(len(lat))/total.Seconds())
	fmt.Fprintf(out, "latency: p50 %v  p90 %v  p99 %v  max %v  min %v\n", q(0.5), q(0.9), q(0.99), lat[len(lat)-1].Round(10*time.Microsecond), lat[0].Round(10*time.Microsecond))
	if len(errs) > 0 {
		fmt.Fprintf(out, "first error: %v\n", errs[0])
	}
	return nil
}
