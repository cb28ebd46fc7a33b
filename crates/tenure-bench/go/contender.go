// Go's concurrency.Election (etcd 3.4's go.etcd.io/etcd/clientv3/concurrency)
// as a tenure-bench contender: the protocol of crates/tenure-bench/src/proc.rs
// over stdin/stdout.
//
// Usage:
//
//	go-contender <endpoints, comma-separated> <election prefix> <session TTL s>
//
//	stdout  READY | GRANT <unix ns> | RESIGNING <unix ns> | COUNT <n>
//	        | ACQUIRED <ms> | RELEASED | LOST <unix ns> <reason> | ERROR <message>
//	stdin   campaign | resign | count | many <n> [<set>] | release ;
//	        end of stdin or SIGTERM/SIGINT -> resign, revoke the session, exit
//
// What users embed: one Session (NewSession with a TTL) per process, an
// Election per campaign on it, Campaign to queue and lead, Resign to give
// leadership up, and Observe plus Session.Done to learn that leadership was
// lost. Every held election, `many`'s too, is observed, as tenure's
// leaderships are monitored. Diagnostics go to stderr.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/clientv3/concurrency"
)

// patience bounds every wait of the program's own.
const patience = 60 * time.Second

var out sync.Mutex

// emit prints one protocol line; lines come from the main goroutine and the
// campaigns' goroutines.
func emit(format string, args ...interface{}) {
	out.Lock()
	defer out.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

// nanos is the host's clock in nanoseconds since the epoch.
func nanos() int64 { return time.Now().UnixNano() }

// contender is one Election: queued, then leading until stop.
type contender struct {
	election *concurrency.Election
	cancel   context.CancelFunc
	// Closed when Campaign returns; granted and err are set before.
	done    chan struct{}
	granted bool
	err     error
	// Set before a resignation, so the observer does not call it a loss.
	stopping int32
}

// campaign starts Campaign on a goroutine; onGrant runs once it returns
// elected, then Observe watches for the loss.
func campaign(session *concurrency.Session, prefix, value string, onGrant func()) *contender {
	ctx, cancel := context.WithCancel(context.Background())
	c := &contender{
		election: concurrency.NewElection(session, prefix),
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	go func() {
		err := c.election.Campaign(ctx, value)
		// etcd pushes back ("too many requests") while its apply lags the
		// log, as 10,000 campaigns at once make it: wait and ask again, as
		// a service built on the package would.
		for err != nil && ctx.Err() == nil && strings.Contains(err.Error(), "too many requests") {
			time.Sleep(50 * time.Millisecond)
			err = c.election.Campaign(ctx, value)
		}
		c.granted, c.err = err == nil, err
		close(c.done)
		if err != nil {
			if ctx.Err() == nil {
				emit("ERROR campaign on %s: %v", prefix, err)
			}
			return
		}
		onGrant()
		c.observe(ctx, session)
	}()
	return c
}

// observe prints LOST when the leader Observe reports is another key, or
// the session ends, unless the leadership is being given up.
func (c *contender) observe(ctx context.Context, session *concurrency.Session) {
	ours := c.election.Key()
	leaders := c.election.Observe(ctx)
	lost := func(reason string) {
		if atomic.LoadInt32(&c.stopping) == 0 {
			emit("LOST %d %s", nanos(), reason)
		}
	}
	for {
		select {
		case <-session.Done():
			lost("SessionExpired")
			return
		case resp, ok := <-leaders:
			if !ok {
				if ctx.Err() == nil {
					lost("ObserveEnded")
				}
				return
			}
			if len(resp.Kvs) > 0 && string(resp.Kvs[0].Key) != ours {
				lost("Replaced")
				return
			}
		}
	}
}

// stop gives the leadership, or the place in the queue, up: a campaign not
// yet granted is cancelled (Campaign deletes its key), a granted one resigns
// (deletes its key). Returns once the key is deleted.
func (c *contender) stop() error {
	atomic.StoreInt32(&c.stopping, 1)
	c.cancel()
	select {
	case <-c.done:
	case <-time.After(patience):
		return errors.New("Campaign did not return after its context was cancelled")
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	// A no-op unless granted; pushed back like Campaign, ask again.
	err := c.election.Resign(ctx)
	for err != nil && ctx.Err() == nil && strings.Contains(err.Error(), "too many requests") {
		time.Sleep(50 * time.Millisecond)
		err = c.election.Resign(ctx)
	}
	return err
}

// stopAll stops contenders concurrently, as tenure resigns its `many`.
func stopAll(cs []*contender) error {
	errs := make(chan error, len(cs))
	for _, c := range cs {
		go func(c *contender) { errs <- c.stop() }(c)
	}
	var first error
	for range cs {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// count is the number of candidates' keys under the election's prefix.
func count(client *clientv3.Client, prefix string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	resp, err := client.Get(ctx, prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Count, nil
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: go-contender <endpoints> <election prefix> <session TTL s>")
		os.Exit(2)
	}
	endpoints, prefix := strings.Split(os.Args[1], ","), os.Args[2]
	ttl, err := strconv.Atoi(os.Args[3])
	if err != nil || ttl <= 0 {
		fmt.Fprintf(os.Stderr, "go-contender: bad TTL %q\n", os.Args[3])
		os.Exit(2)
	}
	// Go 1.19 seeds math/rand with 1: without this, every contender's
	// client would retry and jitter on the same schedule.
	rand.Seed(time.Now().UnixNano() ^ int64(os.Getpid()))

	client, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		emit("ERROR %v", err)
		os.Exit(1)
	}
	// READY promises a reachable server.
	if _, err := count(client, prefix); err != nil {
		emit("ERROR %v", err)
		os.Exit(1)
	}
	session, err := concurrency.NewSession(client, concurrency.WithTTL(ttl))
	if err != nil {
		emit("ERROR session: %v", err)
		os.Exit(1)
	}

	lines := make(chan string)
	go func() {
		scanner := bufio.NewScanner(os.Stdin)
		for scanner.Scan() {
			lines <- scanner.Text()
		}
		close(lines)
	}()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)

	pid, campaigns := os.Getpid(), 0
	var current *contender
	var many []*contender
	emit("READY")
loop:
	for {
		var line string
		select {
		case sig := <-signals:
			fmt.Fprintf(os.Stderr, "go-contender: %v\n", sig)
			break loop
		case l, ok := <-lines:
			if !ok {
				break loop
			}
			line = l
		}
		words := strings.Fields(line)
		if len(words) == 0 {
			continue
		}
		switch words[0] {
		case "campaign":
			if current != nil {
				emit("ERROR already campaigning")
				continue
			}
			campaigns++
			value := fmt.Sprintf("go-%d-%d", pid, campaigns)
			current = campaign(session, prefix, value, func() { emit("GRANT %d", nanos()) })
		case "resign":
			emit("RESIGNING %d", nanos())
			if current != nil {
				if err := current.stop(); err != nil {
					emit("ERROR resign: %v", err)
				}
				current = nil
			}
		case "count":
			n, err := count(client, prefix)
			if err != nil {
				emit("ERROR count: %v", err)
				continue
			}
			emit("COUNT %d", n)
		case "many":
			if len(many) > 0 {
				emit("ERROR already holding many")
				continue
			}
			if len(words) < 2 {
				emit("ERROR many needs a count")
				continue
			}
			n, err := strconv.Atoi(words[1])
			if err != nil {
				emit("ERROR bad count %q", words[1])
				continue
			}
			set := "many"
			if len(words) > 2 {
				set = words[2]
			}
			// All on this one session, campaigning at once, like tenure's
			// campaigns, Curator's latches and kazoo's elections.
			acquired := make(chan struct{}, n)
			started := time.Now()
			for i := 0; i < n; i++ {
				many = append(many, campaign(session, fmt.Sprintf("%s-%s/e%d", prefix, set, i),
					fmt.Sprintf("go-%d-%s-%d", pid, set, i), func() { acquired <- struct{}{} }))
			}
			timeout := time.After(patience)
			got := 0
			for got < n {
				select {
				case <-acquired:
					got++
				case <-timeout:
					emit("ERROR only %d of %d acquired", got, n)
					continue loop
				}
			}
			emit("ACQUIRED %.3f", float64(time.Since(started).Nanoseconds())/1e6)
		case "release":
			err := stopAll(many)
			many = nil
			if err != nil {
				emit("ERROR release: %v", err)
				continue
			}
			emit("RELEASED")
		default:
			emit("ERROR unknown command %s", line)
		}
	}

	// The end: resign, so the next run finds no key, and revoke the lease.
	status := 0
	if current != nil {
		if err := current.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "go-contender: resign: %v\n", err)
			status = 1
		}
	}
	if err := stopAll(many); err != nil {
		fmt.Fprintf(os.Stderr, "go-contender: release: %v\n", err)
		status = 1
	}
	if err := session.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "go-contender: revoke: %v\n", err)
	}
	client.Close()
	os.Exit(status)
}
