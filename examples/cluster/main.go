// Command cluster shows a Baton cluster at work: three nodes, each its own
// OS process on 127.0.0.1, join through Baton's discovery, contend for one
// lock (its grain queues every node's waiters in one FIFO and hands the
// lock over with a new fencing token each time), lose a node to SIGKILL
// while it holds the lock, and carry on.
//
//	go run ./examples/cluster                     # node1 hosts an embedded etcd the others use
//	go run ./examples/cluster -config baton.yaml  # every node on your Redis/etcd
//
// The program starts itself three more times as the nodes (the
// BATON_CLUSTER_EXAMPLE_NODE environment variable selects the node mode)
// and drives them through their stdin and stdout.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/runtime"
	"github.com/baton-go/baton/runtime/cluster"
	"github.com/baton-go/baton/runtime/embedded"
)

// nodeEnv, set in a child's environment, names the node it runs.
const nodeEnv = "BATON_CLUSTER_EXAMPLE_NODE"

const (
	clusterName = "baton-example"
	lockName    = "demo"
	// lockTTL is short so the killed holder's lock frees quickly; it is
	// auto-renewed while its holder lives.
	lockTTL = 3 * time.Second
)

func main() {
	if name := os.Getenv(nodeEnv); name != "" {
		if err := runNode(name, os.Args[1:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			os.Exit(1)
		}
		return
	}
	configPath := flag.String("config", "", "YAML system config for every node (default: node1 runs an embedded etcd)")
	flag.Parse()
	if err := run(*configPath, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

// run is the demo: it starts the nodes and tells them what to do.
func run(configPath string, w io.Writer) (err error) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	say := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	var nodes []*child
	defer func() {
		for _, n := range nodes {
			n.kill() // no-op for the nodes already stopped
		}
	}()
	start := func(name string, args ...string) (*child, error) {
		c, err := startChild(exe, name, args)
		if err == nil {
			nodes = append(nodes, c)
		}
		return c, err
	}

	// 1. Three nodes join.
	backend := []string{"-config", configPath}
	if configPath == "" {
		say("Baton cluster demo: 3 nodes, each its own process on 127.0.0.1; node1 hosts an embedded etcd")
		node1, err := start("node1", "-embedded")
		if err != nil {
			return err
		}
		eps, err := node1.expect(ctx, "etcd ")
		if err != nil {
			return err
		}
		backend = []string{"-etcd", eps}
	} else {
		say("Baton cluster demo: 3 nodes, each its own process on 127.0.0.1, on the backends of %s", configPath)
		if _, err := start("node1", backend...); err != nil {
			return err
		}
	}
	for _, name := range []string{"node2", "node3"} {
		if _, err := start(name, backend...); err != nil {
			return err
		}
	}
	for _, n := range nodes {
		addr, err := n.expect(ctx, "ready ")
		if err != nil {
			return err
		}
		say("  %s up at %s (pid %d)", n.name, addr, n.cmd.Process.Pid)
	}
	for _, n := range nodes {
		if _, err := n.expect(ctx, "members 3"); err != nil {
			return err
		}
	}
	say("  each node sees all three members (registered in discovery as service %q)", clusterName)

	// 2. Contended locking from every node.
	say("\nContended locking: 3 contenders on each node, 4 rounds each, on lock %q", lockName)
	grants, err := contend(ctx, nodes, 3, 4)
	if err != nil {
		return err
	}
	say("  hand-off order (holder, fencing token):")
	for i := 0; i < len(grants); i += 6 {
		var row []string
		for _, g := range grants[i:min(i+6, len(grants))] {
			row = append(row, fmt.Sprintf("%s/%s %d", g.node, g.contender, g.token))
		}
		say("    %s", strings.Join(row, "  ·  "))
	}
	say("  %d grants, tokens strictly increasing: %v", len(grants), increasing(grants))

	// 3. SIGKILL the holder.
	victim, survivors := nodes[2], nodes[:2]
	say("\n%s takes %q (TTL %v, auto-renewed) and the others queue for it", victim.name, lockName, lockTTL)
	victim.send("hold %s", lockName)
	held, err := victim.expect(ctx, "holding ")
	if err != nil {
		return err
	}
	for _, s := range survivors {
		s.send("wait %s", lockName)
	}
	time.Sleep(200 * time.Millisecond) // let the waits queue behind the holder
	say("  %s holds it with token %s; killing %s with SIGKILL", victim.name, held, victim.name)
	killed := time.Now()
	victim.kill()
	first, token, err := firstGot(ctx, survivors)
	if err != nil {
		return err
	}
	say("  the lock is free again %v after the kill: %s got it with token %s (> %s)",
		time.Since(killed).Round(10*time.Millisecond), first.name, token, held)
	second := survivors[0]
	if second == first {
		second = survivors[1]
	}
	first.send("release")
	if _, err := first.expect(ctx, "released"); err != nil {
		return err
	}
	token2, err := second.expect(ctx, "got ")
	if err != nil {
		return err
	}
	say("  %s released; %s, queued behind it, got it next with token %s", first.name, second.name, token2)
	second.send("release")
	if _, err := second.expect(ctx, "released"); err != nil {
		return err
	}
	for _, s := range survivors {
		if _, err := s.expect(ctx, "members 2"); err != nil {
			return err
		}
	}

	// 4. The survivors carry on.
	say("\nThe survivors carry on: 2 contenders on each, 3 rounds each")
	after, err := contend(ctx, survivors, 2, 3)
	if err != nil {
		return err
	}
	say("  %d more grants, tokens %d … %d, strictly increasing: %v", len(after), after[0].token, after[len(after)-1].token, increasing(after))

	// 5. Shut down. The node hosting the embedded etcd goes last: the
	// others deregister from it while it still serves.
	var host *child
	if configPath == "" {
		host = nodes[0]
	}
	var others []*child
	for _, s := range survivors {
		if s != host {
			others = append(others, s)
		}
	}
	if err := stopAll(ctx, others); err != nil {
		return err
	}
	if host != nil {
		if err := stopAll(ctx, []*child{host}); err != nil {
			return err
		}
	}
	say("\nAll nodes stopped; the demo took %v.", time.Since(began).Round(100*time.Millisecond))
	return nil
}

// stopAll tells nodes to stop and waits until they have exited.
func stopAll(ctx context.Context, nodes []*child) error {
	for _, n := range nodes {
		n.send("stop")
	}
	for _, n := range nodes {
		if err := n.wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

type grantInfo struct {
	node, contender string
	token           uint64
}

// contend runs contenders×rounds acquisitions on every node at once and
// returns the grants in token order.
func contend(ctx context.Context, nodes []*child, contenders, rounds int) ([]grantInfo, error) {
	for _, n := range nodes {
		n.send("contend %s %d %d", lockName, contenders, rounds)
	}
	var grants []grantInfo
	for _, n := range nodes {
		for range contenders * rounds {
			line, err := n.expect(ctx, "grant ")
			if err != nil {
				return nil, err
			}
			f := strings.Fields(line)
			tok, _ := strconv.ParseUint(f[1], 10, 64)
			grants = append(grants, grantInfo{node: n.name, contender: f[0], token: tok})
		}
		if _, err := n.expect(ctx, "contended"); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(grants, func(a, b grantInfo) int {
		switch {
		case a.token < b.token:
			return -1
		case a.token > b.token:
			return 1
		}
		return 0
	})
	return grants, nil
}

func increasing(grants []grantInfo) bool {
	for i := 1; i < len(grants); i++ {
		if grants[i].token <= grants[i-1].token {
			return false
		}
	}
	return true
}

// firstGot waits for the first node that reports it got the lock.
func firstGot(ctx context.Context, nodes []*child) (*child, string, error) {
	for ctx.Err() == nil {
		for _, n := range nodes {
			if tok, ok := n.poll("got "); ok {
				return n, tok, nil
			}
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	return nil, "", fmt.Errorf("nobody got the lock: %w", ctx.Err())
}

// child is a node process.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser

	mu    sync.Mutex
	lines []string // unread stdout lines
	more  chan struct{}
	done  chan struct{} // stdout closed
	err   error         // exit status, after done
}

func startChild(exe, name string, args []string) (*child, error) {
	c := &child{name: name, more: make(chan struct{}), done: make(chan struct{})}
	c.cmd = exec.Command(exe, args...)
	c.cmd.Env = append(os.Environ(), nodeEnv+"="+name)
	c.cmd.Stderr = os.Stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			close(c.more)
			c.more = make(chan struct{})
			c.mu.Unlock()
		}
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) send(format string, args ...any) {
	_, _ = fmt.Fprintf(c.stdin, format+"\n", args...)
}

// poll takes the first unread line starting with prefix, if any, and
// returns the rest of it.
func (c *child) poll(prefix string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, l := range c.lines {
		if strings.HasPrefix(l, prefix) {
			c.lines = append(c.lines[:i], c.lines[i+1:]...)
			return strings.TrimPrefix(l, prefix), true
		}
	}
	return "", false
}

// expect waits for a line starting with prefix and returns the rest of it.
func (c *child) expect(ctx context.Context, prefix string) (string, error) {
	for {
		if rest, ok := c.poll(prefix); ok {
			return rest, nil
		}
		c.mu.Lock()
		more := c.more
		c.mu.Unlock()
		select {
		case <-more:
		case <-c.done:
			if rest, ok := c.poll(prefix); ok {
				return rest, nil
			}
			return "", fmt.Errorf("%s exited (%v) before %q", c.name, c.err, strings.TrimSpace(prefix))
		case <-ctx.Done():
			return "", fmt.Errorf("%s: waiting for %q: %w", c.name, strings.TrimSpace(prefix), ctx.Err())
		}
	}
}

// wait waits for the process to exit and reports a failed exit.
func (c *child) wait(ctx context.Context) error {
	select {
	case <-c.done:
		if c.err != nil {
			return fmt.Errorf("%s: %w", c.name, c.err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s did not stop: %w", c.name, ctx.Err())
	}
}

// kill ends the process with SIGKILL (if it still runs) and reaps it.
func (c *child) kill() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Kill()
	<-c.done
}

// runNode is one node: it joins the cluster and runs the demo's commands
// from in, reporting on out.
func runNode(name string, args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML system config")
	etcdEndpoints := fs.String("etcd", "", "comma-separated etcd endpoints")
	useEmbedded := fs.Bool("embedded", false, "host an embedded etcd")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var sc runtime.Spec
	switch {
	case *configPath != "":
		var err error
		if sc, err = runtime.LoadSpec(*configPath); err != nil {
			return err
		}
	case *etcdEndpoints != "":
		sc.Etcd = &etcd.Config{Endpoints: strings.Split(*etcdEndpoints, ",")}
	case !*useEmbedded:
		return errors.New("one of -config, -etcd or -embedded is needed")
	}
	sc.NodeID = name
	n, err := cluster.New(cluster.Spec{Name: clusterName, Node: &sc, MemberTTL: 2 * time.Second},
		cluster.WithRuntimeOptions(embedded.Option()))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = n.Start(ctx)
	cancel()
	if err != nil {
		return err
	}
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
	}
	if *useEmbedded {
		say("etcd %s", strings.Join(n.Runtime().Spec().Etcd.Endpoints, ","))
	}
	say("ready %s", n.Address())

	life, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { // report the member count as it changes
		last := -1
		for {
			changed := n.MembersChanged()
			if c := len(n.Members()); c != last {
				say("members %d", c)
				last = c
			}
			select {
			case <-changed:
			case <-life.Done():
				return
			}
		}
	})
	var held backends.Lease
	locks := n.Locks()
	sc2 := bufio.NewScanner(in)
	for sc2.Scan() {
		f := strings.Fields(sc2.Text())
		if len(f) == 0 {
			continue
		}
		if f[0] == "stop" {
			break
		}
		switch f[0] {
		case "contend": // contend <lock> <contenders> <rounds>
			contenders, _ := strconv.Atoi(f[2])
			rounds, _ := strconv.Atoi(f[3])
			wg.Go(func() {
				var cw sync.WaitGroup
				for c := range contenders {
					cw.Go(func() {
						for range rounds {
							lease, err := locks.Acquire(life, f[1], backends.LockOptions{TTL: lockTTL})
							if err != nil {
								say("error %v", err)
								return
							}
							say("grant c%d %d", c, lease.Token())
							_ = lease.Release(life)
						}
					})
				}
				cw.Wait()
				say("contended")
			})
		case "hold", "wait": // hold|wait <lock>
			wg.Go(func() {
				lease, err := locks.Acquire(life, f[1], backends.LockOptions{TTL: lockTTL, AutoRenew: true})
				if err != nil {
					say("error %v", err)
					return
				}
				mu.Lock()
				held = lease
				mu.Unlock()
				if f[0] == "hold" {
					say("holding %d", lease.Token())
				} else {
					say("got %d", lease.Token())
				}
			})
		case "release":
			mu.Lock()
			lease := held
			held = nil
			mu.Unlock()
			if lease != nil {
				_ = lease.Release(life)
			}
			say("released")
		}
	}
	stop()
	wg.Wait()
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return n.Stop(ctx)
}
