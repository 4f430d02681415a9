package tracking

import (
	"net/http"
	"net/netip"
	"testing"
)

func mustPrefixes(t *testing.T, cidrs ...string) []netip.Prefix {
	t.Helper()
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			t.Fatalf("ParsePrefix(%q): %v", c, err)
		}
		out = append(out, p)
	}
	return out
}

func TestClientIP(t *testing.T) {
	trusted := mustPrefixes(t, "10.0.0.0/8", "127.0.0.1/32", "2001:db8:ffff::/48")
	tests := []struct {
		name       string
		trusted    []netip.Prefix
		remoteAddr string
		forwarded  []string // X-Forwarded-For header values, in order
		want       string
	}{
		// A client that reaches us directly must not choose its IP.
		{name: "untrusted peer ignores X-Forwarded-For", trusted: trusted,
			remoteAddr: "198.51.100.20:5000", forwarded: []string{"203.0.113.7"}, want: "198.51.100.20"},
		{name: "no trusted proxies ignores X-Forwarded-For", trusted: nil,
			remoteAddr: "127.0.0.1:5000", forwarded: []string{"203.0.113.7"}, want: "127.0.0.1"},
		{name: "trusted peer without header is the client", trusted: trusted,
			remoteAddr: "10.1.2.3:5000", want: "10.1.2.3"},
		{name: "trusted peer, one hop", trusted: trusted,
			remoteAddr: "10.1.2.3:5000", forwarded: []string{"203.0.113.7"}, want: "203.0.113.7"},
		// The leftmost entries are whatever the client sent; only the
		// hops appended by trusted proxies are believed.
		{name: "chain walked from the right to the first untrusted hop", trusted: trusted,
			remoteAddr: "10.1.2.3:5000", forwarded: []string{"6.6.6.6, 203.0.113.7, 10.9.9.9"}, want: "203.0.113.7"},
		{name: "chain across several header lines", trusted: trusted,
			remoteAddr: "10.1.2.3:5000", forwarded: []string{"6.6.6.6, 203.0.113.7", "10.9.9.9,10.8.8.8"}, want: "203.0.113.7"},
		{name: "every hop trusted gives the leftmost", trusted: trusted,
			remoteAddr: "10.1.2.3:5000", forwarded: []string{"10.7.7.7, 10.9.9.9"}, want: "10.7.7.7"},
		{name: "spaces and tabs around hops", trusted: trusted,
			remoteAddr: "10.1.2.3:5000", forwarded: []string{" 203.0.113.7 ,\t10.9.9.9\t"}, want: "203.0.113.7"},
		// A hop that does not parse ends what can be believed: the
		// result is the last address a trusted proxy vouched for.
		{name: "malformed rightmost hop gives the peer", trusted: trusted,
			remoteAddr: "10.1.2.3:5000", forwarded: []string{"203.0.113.7, not-an-ip"}, want: "10.1.2.3"},
		{name: "malformed hop behind a trusted hop gives that hop", trusted: trusted,
			remoteAddr: "10.1.2.3:5000", forwarded: []string{"203.0.113.7, garbage, 10.9.9.9"}, want: "10.9.9.9"},
		{name: "empty hop gives the peer", trusted: trusted,
			remoteAddr: "10.1.2.3:5000", forwarded: []string{"203.0.113.7,"}, want: "10.1.2.3"},
		{name: "IPv4 hop with a port", trusted: trusted,
			remoteAddr: "10.1.2.3:5000", forwarded: []string{"203.0.113.7:4711"}, want: "203.0.113.7"},
		{name: "IPv6 hop with a port", trusted: trusted,
			remoteAddr: "10.1.2.3:5000", forwarded: []string{"[2001:db8::7]:443"}, want: "2001:db8::7"},
		{name: "trusted hop with a port is skipped", trusted: trusted,
			remoteAddr: "10.1.2.3:5000", forwarded: []string{"203.0.113.7, 10.9.9.9:8080"}, want: "203.0.113.7"},
		{name: "bracketed IPv6 hop without a port is malformed", trusted: trusted,
			remoteAddr: "10.1.2.3:5000", forwarded: []string{"[2001:db8::7]"}, want: "10.1.2.3"},
		{name: "IPv6 peer untrusted", trusted: trusted,
			remoteAddr: "[2001:db8:1::5]:443", forwarded: []string{"203.0.113.7"}, want: "2001:db8:1::5"},
		{name: "IPv6 trusted peer and IPv6 client", trusted: trusted,
			remoteAddr: "[2001:db8:ffff::1]:443", forwarded: []string{"2001:db8:1::5"}, want: "2001:db8:1::5"},
		{name: "IPv6 client in canonical form", trusted: trusted,
			remoteAddr: "10.1.2.3:5000", forwarded: []string{"2001:DB8:0:0:0:0:0:7"}, want: "2001:db8::7"},
		{name: "v4-mapped peer matches an IPv4 prefix", trusted: trusted,
			remoteAddr: "[::ffff:10.1.2.3]:5000", forwarded: []string{"203.0.113.7"}, want: "203.0.113.7"},
		{name: "v4-mapped untrusted peer is reported as IPv4", trusted: trusted,
			remoteAddr: "[::ffff:198.51.100.20]:5000", forwarded: []string{"203.0.113.7"}, want: "198.51.100.20"},
		{name: "v4-mapped hop is reported as IPv4", trusted: trusted,
			remoteAddr: "10.1.2.3:5000", forwarded: []string{"::ffff:203.0.113.7"}, want: "203.0.113.7"},
		{name: "v4-mapped trusted hop is skipped", trusted: trusted,
			remoteAddr: "10.1.2.3:5000", forwarded: []string{"203.0.113.7, ::ffff:10.9.9.9"}, want: "203.0.113.7"},
		{name: "peer without port", trusted: trusted,
			remoteAddr: "198.51.100.20", want: "198.51.100.20"},
		{name: "peer that is not an IP is returned as is", trusted: trusted,
			remoteAddr: "@", forwarded: []string{"203.0.113.7"}, want: "@"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := http.NewRequest(http.MethodGet, "http://gate.test/", nil)
			if err != nil {
				t.Fatal(err)
			}
			r.RemoteAddr = tt.remoteAddr
			for _, v := range tt.forwarded {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := NewProxies(tt.trusted).ClientIP(r); got != tt.want {
				t.Errorf("ClientIP(RemoteAddr=%q, X-Forwarded-For=%q) = %q, want %q", tt.remoteAddr, tt.forwarded, got, tt.want)
			}
		})
	}
}

func TestProxiesTrusts(t *testing.T) {
	p := NewProxies(mustPrefixes(t, "10.0.0.0/8", "::1/128"))
	tests := []struct {
		addr string
		want bool
	}{
		{"10.255.0.1", true},
		{"::ffff:10.0.0.1", true},
		{"11.0.0.1", false},
		{"::1", true},
		{"::2", false},
	}
	for _, tt := range tests {
		if got := p.Trusts(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Trusts(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if NewProxies(nil).Trusts(netip.MustParseAddr("127.0.0.1")) {
		t.Errorf("NewProxies(nil).Trusts(127.0.0.1) = true, want false")
	}
}
