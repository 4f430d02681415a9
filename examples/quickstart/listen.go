package main

import (
	"fmt"
	"net"
	"net/url"
)

// listenRequest is one address to listen on and the flag that set it, so
// that an error can name the flag to change.
type listenRequest struct {
	flag string
	addr string
}

// normalizeAddrs checks that every request's address is host:port and
// replaces an empty host with 127.0.0.1, so that the quick start stays off
// the network unless a host is named.
func normalizeAddrs(requests []listenRequest) error {
	for i, r := range requests {
		host, port, err := net.SplitHostPort(r.addr)
		if err != nil {
			return fmt.Errorf("invalid %s address %q: want host:port such as 127.0.0.1:8080, or :0 for a free port", r.flag, r.addr)
		}
		if host == "" {
			host = "127.0.0.1"
		}
		requests[i].addr = net.JoinHostPort(host, port)
	}
	return nil
}

// listenAll opens a TCP listener for each request, in order. On error it
// closes the listeners it opened.
func listenAll(requests []listenRequest) ([]net.Listener, error) {
	listeners := make([]net.Listener, 0, len(requests))
	for _, r := range requests {
		ln, err := net.Listen("tcp", r.addr)
		if err != nil {
			for _, opened := range listeners {
				opened.Close()
			}
			return nil, fmt.Errorf("listen on %s (flag %s): %w; choose another port with %s 127.0.0.1:PORT, or %s :0 for a free one", r.addr, r.flag, err, r.flag, r.flag)
		}
		listeners = append(listeners, ln)
	}
	return listeners, nil
}

// loopbackURL returns the http URL of a listener's address. A listener on
// an unspecified address (0.0.0.0 or ::) is named by 127.0.0.1, which
// reaches it from this machine.
func loopbackURL(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "http://" + addr.String()
	}
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(tcp.Port))
}

// redactedURL returns raw with any password replaced by "xxxxx", for
// printing a REDIS_URL. It returns "[redacted]" when raw does not parse,
// because the password cannot be found then.
func redactedURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "[redacted]"
	}
	return u.Redacted()
}
