// Package tracking derives a request's client identity (IP, User-Agent,
// route) and turns the activity a Store recorded into logs: throttled
// "session activity" lines and warnings when a session's IP or User-Agent
// changes.
package tracking

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Proxies decides which peers' X-Forwarded-For headers are believed.
type Proxies struct {
	trusted []netip.Prefix
}

// NewProxies returns a Proxies that trusts the given prefixes. With none, no
// peer is trusted and the client IP is always the TCP peer.
func NewProxies(trusted []netip.Prefix) Proxies {
	return Proxies{trusted: trusted}
}

// Trusts reports whether addr lies in a trusted prefix.
func (p Proxies) Trusts(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, prefix := range p.trusted {
		if prefix.Contains(addr) {
			return true
		}
	}
	return false
}

// PeerAddr parses the TCP peer of r. ok is false when RemoteAddr is not an
// IP and port, as with some test servers and Unix sockets.
func PeerAddr(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return addr.Unmap(), true
}

// ClientIP returns the client's address. When the TCP peer is a trusted
// proxy, it walks X-Forwarded-For from the right and returns the first
// address that is not a trusted proxy, so a client cannot choose its IP by
// sending its own X-Forwarded-For. Otherwise it returns the peer.
func (p Proxies) ClientIP(r *http.Request) string {
	peer, ok := PeerAddr(r)
	if !ok {
		return r.RemoteAddr
	}
	if !p.Trusts(peer) {
		return peer.String()
	}
	client := peer
	values := r.Header.Values("X-Forwarded-For")
	for i := len(values) - 1; i >= 0; i-- {
		hops := strings.Split(values[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			addr, ok := parseHop(hops[j])
			if !ok {
				// A malformed hop ends the chain we can believe.
				return client.String()
			}
			client = addr
			if !p.Trusts(client) {
				return client.String()
			}
		}
	}
	return client.String()
}

// parseHop parses one X-Forwarded-For entry, an IPv4 or IPv6 address with
// or without a port ("203.0.113.7:4711", "[2001:db8::7]:443"), and drops
// the port.
func parseHop(hop string) (netip.Addr, bool) {
	hop = strings.TrimSpace(hop)
	if addr, err := netip.ParseAddr(hop); err == nil {
		return addr.Unmap(), true
	}
	if addrPort, err := netip.ParseAddrPort(hop); err == nil {
		return addrPort.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}
