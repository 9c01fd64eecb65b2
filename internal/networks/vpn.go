package networks

// VPNMember holds the address of a network's VPN gateway (package vpn) in
// the network's record, so no instance slot gets it. It names no service
// (service names start with a letter), and VPNService is its "service" for
// Record.Assign and Record.Release.
const (
	VPNService = "#vpn"
	VPNMember  = VPNService + "/gateway/0"
)
