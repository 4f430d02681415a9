package testutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterSize is the number of masters StartCluster runs: the fewest that
// Redis Cluster accepts, and enough to put users on different nodes.
const clusterSize = 3

// clusterReadyTimeout bounds the wait for cluster_state:ok. A new master
// reports ok no sooner than 2s after it starts (CLUSTER_WRITABLE_DELAY,
// 2000 ms, in Redis's src/cluster.c), so a healthy cluster takes a little
// over 2s: 2.0 to 2.2s with redis-server 7.0.15 on 2 cores.
const clusterReadyTimeout = 15 * time.Second

// Cluster is a Redis Cluster of three masters without replicas, owned by
// one test. Each master serves a third of the 16384 hash slots.
type Cluster struct {
	t     testing.TB
	nodes []*clusterNode
}

// clusterNode is one redis-server process of a Cluster.
type clusterNode struct {
	port    int
	busPort int
	dir     string
	cmd     *exec.Cmd
	client  *redis.Client
}

func (n *clusterNode) addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

// StartCluster starts three redis-server masters with cluster mode on, on
// free loopback ports and without persistence, assigns each a contiguous
// third of the hash slots, joins them with CLUSTER MEET and waits until
// every node reports cluster_state:ok. It stops every node when the test
// ends. Like StartRedis, it skips the test when redis-server is missing,
// or fails it when RequireRedis is true.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin := RedisServerPath(t)
	// The temporary directory is made before stop is registered, so that
	// the nodes are stopped before it is removed.
	root := t.TempDir()
	c := &Cluster{t: t}
	t.Cleanup(c.stop)

	// Start every process before configuring any, because the 2s
	// writable delay of each master runs from its own start.
	for i := range clusterSize {
		dir := filepath.Join(root, strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatalf("make cluster node directory: %v", err)
		}
		n := &clusterNode{port: FreePort(t), busPort: FreePort(t), dir: dir}
		// The bus port defaults to port+10000, which is out of range for
		// ports above 55535, so each node gets a free one of its own.
		n.cmd = exec.Command(bin,
			"--port", strconv.Itoa(n.port), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(n.busPort),
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--save", "", "--appendonly", "no", "--dir", dir,
			"--logfile", filepath.Join(dir, "redis.log"))
		// A file rather than a buffer: exec then copies nothing in a
		// goroutine of its own, and fatalf may read it at any time.
		out, err := os.Create(filepath.Join(dir, "stdout.log"))
		if err != nil {
			t.Fatalf("create cluster node output file: %v", err)
		}
		n.cmd.Stdout, n.cmd.Stderr = out, out
		err = n.cmd.Start()
		out.Close()
		if err != nil {
			t.Fatalf("start redis-server for cluster: %v", err)
		}
		n.client = redis.NewClient(&redis.Options{Addr: n.addr(), DisableIdentity: true, MaxRetries: -1})
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		c.waitForPing(n)
	}

	// Assign slots and distinct config epochs before the nodes meet, so
	// that no epoch collision needs resolving once they do.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	const slots = 16384
	for i, n := range c.nodes {
		first, last := i*slots/clusterSize, (i+1)*slots/clusterSize-1
		if err := n.client.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", first, last).Err(); err != nil {
			c.fatalf("CLUSTER ADDSLOTSRANGE %d %d on %s: %v", first, last, n.addr(), err)
		}
		if err := n.client.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			c.fatalf("CLUSTER SET-CONFIG-EPOCH %d on %s: %v", i+1, n.addr(), err)
		}
	}
	// CLUSTER MEET needs the bus port, because it is not port+10000.
	for _, n := range c.nodes[1:] {
		if err := c.nodes[0].client.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", n.port, n.busPort).Err(); err != nil {
			c.fatalf("CLUSTER MEET %s from %s: %v", n.addr(), c.nodes[0].addr(), err)
		}
	}

	c.waitForState()
	return c
}

// waitForPing waits until n replies to PING.
func (c *Cluster) waitForPing(n *clusterNode) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := n.client.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.fatalf("cluster node %s did not reply to PING within 10s: %v", n.addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitForState waits until every node reports cluster_state:ok and counts
// all three nodes in cluster_known_nodes, so that any node returns the
// whole slot map to a client.
func (c *Cluster) waitForState() {
	c.t.Helper()
	deadline := time.Now().Add(clusterReadyTimeout)
	for {
		pending := ""
		for _, n := range c.nodes {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			info, err := n.client.ClusterInfo(ctx).Result()
			cancel()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(clusterSize)) {
				pending = fmt.Sprintf("%s: err %v, CLUSTER INFO:\n%s", n.addr(), err, info)
				break
			}
		}
		if pending == "" {
			return
		}
		if time.Now().After(deadline) {
			c.fatalf("cluster not ready within %v. Last reply from %s", clusterReadyTimeout, pending)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fatalf fails the test with the log of every node appended.
func (c *Cluster) fatalf(format string, args ...any) {
	c.t.Helper()
	var logs strings.Builder
	for _, n := range c.nodes {
		out, _ := os.ReadFile(filepath.Join(n.dir, "stdout.log"))
		text, _ := os.ReadFile(filepath.Join(n.dir, "redis.log"))
		fmt.Fprintf(&logs, "\n--- redis-server %s ---\n%s%s", n.addr(), out, text)
	}
	c.t.Fatalf(format+"%s", append(args, logs.String())...)
}

// stop kills every node in parallel and waits for them to exit.
func (c *Cluster) stop() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		n.client.Close()
		wg.Go(func() {
			_ = n.cmd.Process.Kill()
			_ = n.cmd.Wait()
		})
	}
	wg.Wait()
}

// Addrs returns the host:port of every master, in slot order: the first
// serves the lowest slots.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.addr()
	}
	return addrs
}

// Client returns a cluster client on every node, closed when the test ends.
func (c *Cluster) Client() *redis.ClusterClient {
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), DisableIdentity: true})
	c.t.Cleanup(func() { client.Close() })
	return client
}

// NodeClient returns a plain client on the master at index i of Addrs. Its
// commands reach that node only, which replies with a MOVED redirect for
// keys of slots that it does not own. The Cluster closes it when the test
// ends.
func (c *Cluster) NodeClient(i int) *redis.Client {
	return c.nodes[i].client
}

// NodeOf returns the index in Addrs of the master that owns key's slot,
// as the nodes report it with CLUSTER KEYSLOT and CLUSTER SLOTS.
func (c *Cluster) NodeOf(key string) int {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	slot, err := c.nodes[0].client.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		c.t.Fatalf("CLUSTER KEYSLOT %s: %v", key, err)
	}
	ranges, err := c.nodes[0].client.ClusterSlots(ctx).Result()
	if err != nil {
		c.t.Fatalf("CLUSTER SLOTS: %v", err)
	}
	for _, r := range ranges {
		if int64(r.Start) > slot || int64(r.End) < slot || len(r.Nodes) == 0 {
			continue
		}
		for i, addr := range c.Addrs() {
			if r.Nodes[0].Addr == addr {
				return i
			}
		}
		c.t.Fatalf("slot %d of %s is served by %s, which is not a node of this cluster", slot, key, r.Nodes[0].Addr)
	}
	c.t.Fatalf("slot %d of %s has no master in CLUSTER SLOTS", slot, key)
	return -1
}

// KillNode kills master i, as a crash would; the cluster then has slots
// without a server. Stopping the cluster afterwards is still safe.
func (c *Cluster) KillNode(i int) {
	n := c.nodes[i]
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
}
