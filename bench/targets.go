package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// target is one server that the load generators drive.
type target struct {
	name string
	url  string
	// tokenFile holds the tokens that the load generators rotate.
	tokenFile string
	// pids are the processes whose CPU time counts as the proxy's; the
	// direct children of each count too (nginx's workers).
	pids []int
	// usesRedis marks targets whose Redis commands are counted.
	usesRedis bool
	// adminAddr is sessiongate's admin listener; empty for other targets.
	adminAddr string
}

// bench is the state of one benchmark run: its directory, children and
// targets.
type bench struct {
	cfg    config
	dir    string
	self   string
	script string
	keys   *keys
	procs  []*process
	notes  []string

	backendURL string
	redisAddr  string
	redisPID   int
	targets    []*target
}

func (b *bench) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.notes = append(b.notes, msg)
	fmt.Fprintln(os.Stderr, "note:", msg)
}

// stopAll stops the children in reverse start order.
func (b *bench) stopAll() {
	for i := len(b.procs) - 1; i >= 0; i-- {
		b.procs[i].stop()
	}
	b.procs = nil
}

// start starts a child that listens on addr and waits until it does.
func (b *bench) start(name, bin string, args, env []string, addr string) (*process, error) {
	p, err := startProcess(b.dir, name, bin, args, env)
	if err != nil {
		return nil, err
	}
	b.procs = append(b.procs, p)
	if err := waitPort(p, addr, 15*time.Second); err != nil {
		return nil, err
	}
	return p, nil
}

func loopbackAddr() (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(port), nil
}

func (b *bench) startBackend(tokenFile string) error {
	addr, err := loopbackAddr()
	if err != nil {
		return err
	}
	p, err := b.start("backend", b.self, []string{"backend", "-addr", addr}, nil, addr)
	if err != nil {
		return err
	}
	b.backendURL = "http://" + addr
	b.targets = append(b.targets, &target{name: "backend", url: b.backendURL, tokenFile: tokenFile, pids: []int{p.pid()}})
	return nil
}

// startBareProxy starts the floor as name; pooled adds a buffer pool.
func (b *bench) startBareProxy(name, tokenFile string, pooled bool) error {
	addr, err := loopbackAddr()
	if err != nil {
		return err
	}
	args := []string{"bareproxy", "-addr", addr, "-upstream", b.backendURL}
	if pooled {
		args = append(args, "-buffer-pool")
	}
	p, err := b.start(name, b.self, args, nil, addr)
	if err != nil {
		return err
	}
	b.targets = append(b.targets, &target{name: name, url: "http://" + addr, tokenFile: tokenFile, pids: []int{p.pid()}})
	return nil
}

// nginxConfig is a plain reverse proxy with upstream keep-alive, the set-up
// an operator would write; every path it writes lies under its own prefix.
const nginxConfig = `worker_processes auto;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/client_body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream backend {
    server %[2]s;
    keepalive 128;
  }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
    }
  }
}
`

func (b *bench) startNginx(tokenFile string) error {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		b.note("nginx is not installed; its row is missing")
		return nil
	}
	addr, err := loopbackAddr()
	if err != nil {
		return err
	}
	prefix := filepath.Join(b.dir, "nginx")
	if err := os.MkdirAll(prefix, 0o700); err != nil {
		return fmt.Errorf("create nginx prefix: %w", err)
	}
	conf := filepath.Join(prefix, "nginx.conf")
	upstream := b.backendURL[len("http://"):]
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConfig, prefix, upstream, addr)), 0o600); err != nil {
		return fmt.Errorf("write nginx config: %w", err)
	}
	p, err := b.start("nginx", bin, []string{"-p", prefix + "/", "-c", conf, "-e", filepath.Join(prefix, "error.log")}, nil, addr)
	if err != nil {
		return err
	}
	b.targets = append(b.targets, &target{name: "nginx", url: "http://" + addr, tokenFile: tokenFile, pids: []int{p.pid()}})
	return nil
}

func (b *bench) startRedis() error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		b.note("redis-server is not installed; the Redis rows and the Redis memory figures are missing")
		return nil
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	dir := filepath.Join(b.dir, "redis")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create redis dir: %w", err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := b.start("redis", bin, []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir}, nil, addr)
	if err != nil {
		return err
	}
	b.redisAddr, b.redisPID = addr, p.pid()
	return nil
}

// sessiongateDB is the Redis database the sessiongate instances use.
const sessiongateDB = 2

// startSessiongate starts the built binary as name with the extra
// environment. The sweep is off so that it cannot run during a
// measurement, and PPROF=1 exposes profiles on the admin listener.
func (b *bench) startSessiongate(bin, name, tokenFile string, usesRedis bool, extra ...string) error {
	addr, err := loopbackAddr()
	if err != nil {
		return err
	}
	admin, err := loopbackAddr()
	if err != nil {
		return err
	}
	env := append([]string{
		"UPSTREAM_URL=" + b.backendURL,
		"LISTEN_ADDR=" + addr,
		"ADMIN_ADDR=" + admin,
		"LOG_LEVEL=warn",
		"CLEANUP_INTERVAL=0",
		"PPROF=1",
	}, extra...)
	if usesRedis {
		env = append(env, "SESSION_STORE=redis", fmt.Sprintf("REDIS_URL=redis://%s/%d", b.redisAddr, sessiongateDB))
	} else {
		env = append(env, "SESSION_STORE=memory")
	}
	p, err := b.start(name, bin, nil, env, addr)
	if err != nil {
		return err
	}
	b.targets = append(b.targets, &target{name: name, url: "http://" + addr, tokenFile: tokenFile,
		pids: []int{p.pid()}, usesRedis: usesRedis, adminAddr: admin})
	return nil
}

// find returns the target called name, or nil.
func (b *bench) find(name string) *target {
	for _, t := range b.targets {
		if t.name == name {
			return t
		}
	}
	return nil
}
