package api

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// A network's security rules (weft network rule) decide which new
// connections between the network's members are let through, as an Azure
// network security group's inbound rules do: in order of priority (lowest
// number first), the first rule that matches a connection's first packet
// decides, and a connection no rule matches is allowed (as Azure's default
// rule AllowVnetInBound allows traffic within a virtual network). Replies
// of an allowed connection always pass. The rules match the sender's
// address (Source), the protocol and the destination port; every host
// carrying the network enforces them.
//
//	GET    /v1/networks/{name}/rules          -> []NetworkRule, by priority
//	POST   /v1/networks/{name}/rules          NetworkRule -> NetworkRule (201; 409 when its name or priority is taken)
//	DELETE /v1/networks/{name}/rules/{rule}   -> 204

// NetworkRule is one security rule of a network.
type NetworkRule struct {
	Name string `json:"name"`
	// Priority orders the rules, MinRulePriority to MaxRulePriority, the
	// lowest first; no two rules of a network share one.
	Priority int `json:"priority"`
	// Action is RuleAllow or RuleDeny.
	Action string `json:"action"`
	// Protocol is tcp, udp, icmp or RuleAny.
	Protocol string `json:"protocol"`
	// Port is the destination port, 8080, or range, 8080-8090, of a tcp or
	// udp rule; RuleAny for every port.
	Port string `json:"port"`
	// Source is the range of senders, an IPv4 CIDR (a single address is
	// a /32); RuleAny for every sender.
	Source string `json:"source"`
}

// Rule values.
const (
	RuleAllow = "allow"
	RuleDeny  = "deny"
	// RuleAny is the protocol, port or source that matches every one
	// ("*" and "" are read as it too).
	RuleAny = "any"
)

// Limits of a network's rules: Azure's priorities, and its number of
// rules per network security group.
const (
	MinRulePriority = 100
	MaxRulePriority = 4096
	MaxNetworkRules = 1000
)

// Check checks a rule and returns it in canonical form (lower case,
// RuleAny for what matches everything, a port range of one port as the
// port, a single address as a /32). Errors name the field: a name that is
// not one, a priority out of range, an unknown action or protocol, a port
// out of 1-65535, ports on a protocol without them, a source that is not
// an IPv4 CIDR or has host bits set.
func (r NetworkRule) Check() (NetworkRule, error) {
	var p problems
	if !nameRE.MatchString(r.Name) {
		p.add("name", "%q is not a rule name (lowercase letters, digits and dashes, starting with a letter, up to 40)", r.Name)
	}
	if r.Priority < MinRulePriority || r.Priority > MaxRulePriority {
		p.add("priority", "%d is out of range: a priority is %d to %d, the lowest first", r.Priority, MinRulePriority, MaxRulePriority)
	}
	r.Action = strings.ToLower(r.Action)
	if r.Action != RuleAllow && r.Action != RuleDeny {
		p.add("action", "%q is not an action (allow or deny)", r.Action)
	}
	r.Protocol = anyOf(strings.ToLower(r.Protocol))
	switch r.Protocol {
	case "tcp", "udp", "icmp", RuleAny:
	default:
		p.add("protocol", "%q is not a protocol (tcp, udp, icmp or any)", r.Protocol)
	}
	r.Port = anyOf(r.Port)
	if r.Port != RuleAny {
		from, to, err := parsePorts(r.Port)
		switch {
		case err != nil:
			p.add("port", "%v", err)
		case r.Protocol != "tcp" && r.Protocol != "udp":
			p.add("port", "only tcp and udp rules have ports; this one's protocol is %s (give --protocol tcp or udp, or no port)", r.Protocol)
		case from == to:
			r.Port = strconv.Itoa(int(from))
		default:
			r.Port = fmt.Sprintf("%d-%d", from, to)
		}
	}
	r.Source = anyOf(r.Source)
	if r.Source != RuleAny {
		src, err := parseSource(r.Source)
		if err != nil {
			p.add("source", "%v", err)
		} else {
			r.Source = src.String()
		}
	}
	if err := p.err(); err != nil {
		return NetworkRule{}, err
	}
	return r, nil
}

func anyOf(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || s == "*" || strings.EqualFold(s, RuleAny) {
		return RuleAny
	}
	return s
}

// parsePorts reads a port, 8080, or a range, 8080-8090, of ports 1 to
// 65535.
func parsePorts(s string) (from, to uint16, err error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	a, errA := strconv.Atoi(lo)
	b, errB := strconv.Atoi(hi)
	switch {
	case errA != nil || errB != nil:
		return 0, 0, fmt.Errorf("%q is not a port (8080) or range of ports (8080-8090)", s)
	case a < 1 || a > 65535 || b < 1 || b > 65535:
		return 0, 0, fmt.Errorf("%s is out of range: ports are 1 to 65535", s)
	case a > b:
		return 0, 0, fmt.Errorf("%s is not a range: its first port is above its last", s)
	}
	return uint16(a), uint16(b), nil
}

// parseSource reads an IPv4 CIDR without host bits, or an address.
func parseSource(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
		return netip.PrefixFrom(a, 32), nil
	}
	pfx, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 CIDR (e.g. 10.0.0.0/8) or address", s)
	case !pfx.Addr().Is4():
		return netip.Prefix{}, fmt.Errorf("%s is not IPv4 (the networks are IPv4 only)", s)
	case pfx.Masked() != pfx:
		return netip.Prefix{}, fmt.Errorf("%s has host bits set: the range is %s", s, pfx.Masked())
	}
	return pfx, nil
}

// Ports returns a checked rule's destination ports; 0, 0 for any.
func (r NetworkRule) Ports() (from, to uint16) {
	if from, to, err := parsePorts(r.Port); err == nil {
		return from, to
	}
	return 0, 0
}

// SourcePrefix returns a checked rule's source range; the zero Prefix for
// any.
func (r NetworkRule) SourcePrefix() netip.Prefix {
	src, _ := parseSource(r.Source)
	return src
}
