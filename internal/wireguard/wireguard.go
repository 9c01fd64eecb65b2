// Package wireguard runs WireGuard tunnels in user space, inside the
// process (wireguard-go as a library: this kind of host has no WireGuard
// kernel module), and holds WireGuard's keys. The tunnel's TUN device and
// its UDP socket may each be made in a network namespace of the caller's
// choosing: a VPN gateway's TUN sits in a tenant network's namespace while
// its socket stays on the host.
package wireguard

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/curve25519"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// Key is a Curve25519 key, private or public.
type Key [32]byte

// GenerateKey returns a new private key (clamped, as `wg genkey` makes).
func GenerateKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return Key{}, fmt.Errorf("wireguard: generate key: %w", err)
	}
	k[0] &= 248
	k[31] = k[31]&127 | 64
	return k, nil
}

// ParseKey reads a key in WireGuard's base64 form.
func ParseKey(s string) (Key, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != len(Key{}) {
		return Key{}, fmt.Errorf("wireguard: %q is not a key (44 characters of base64)", s)
	}
	return Key(b), nil
}

// String is the key in base64, as wg(8) shows it.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// Public is the public key of private key k.
func (k Key) Public() Key {
	pub, err := curve25519.X25519(k[:], curve25519.Basepoint)
	if err != nil {
		// Only a low-order point gives an error, and the base point is not.
		panic("wireguard: public key: " + err.Error())
	}
	return Key(pub)
}

// Peer is the other end of a tunnel.
type Peer struct {
	PublicKey Key
	// Endpoint is where packets for the peer go first (it may roam);
	// zero: wait for the peer to reach us.
	Endpoint netip.AddrPort
	// AllowedIPs are the addresses routed to the peer, and the only
	// sources accepted from it.
	AllowedIPs []netip.Prefix
	// Keepalive, when not 0, sends a packet that often so a tunnel behind
	// NAT (or a gateway that moved) is found again by the peer.
	Keepalive time.Duration
}

// Config is one tunnel.
type Config struct {
	// Name of the TUN device (at most 15 bytes) and its MTU (default 1420).
	Name string
	MTU  int
	// TunIn and BindIn, when set, run a function in the namespace where
	// the TUN device, respectively the UDP socket, belongs; nil: the
	// caller's own.
	TunIn, BindIn func(func() error) error
	PrivateKey    Key
	// ListenPort is the UDP port (0: any free one).
	ListenPort int
	Peers      []Peer
	Logger     *slog.Logger
}

// Tunnel is a running WireGuard device.
type Tunnel struct {
	dev  *device.Device
	name string
}

// Open makes the TUN device and starts the tunnel. The device is down
// until someone sets its link up (and gives it routes); the UDP socket is
// open once Open returns.
func Open(cfg Config) (*Tunnel, error) {
	if cfg.MTU == 0 {
		cfg.MTU = device.DefaultMTU
	}
	own := func(fn func() error) error { return fn() }
	if cfg.TunIn == nil {
		cfg.TunIn = own
	}
	if cfg.BindIn == nil {
		cfg.BindIn = own
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var td tun.Device
	err := cfg.TunIn(func() (err error) {
		td, err = tun.CreateTUN(cfg.Name, cfg.MTU)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("wireguard: create TUN %s: %w", cfg.Name, err)
	}
	wlog := &device.Logger{
		Verbosef: device.DiscardLogf,
		Errorf:   func(f string, a ...any) { log.Warn("wireguard: "+fmt.Sprintf(f, a...), "device", cfg.Name) },
	}
	dev := device.NewDevice(fixedMTU{td, cfg.MTU}, nsBind{conn.NewDefaultBind(), cfg.BindIn}, wlog)
	if err := dev.IpcSet(uapi(cfg)); err != nil {
		dev.Close()
		return nil, fmt.Errorf("wireguard: configure %s: %w", cfg.Name, err)
	}
	if err := dev.Up(); err != nil {
		dev.Close()
		return nil, fmt.Errorf("wireguard: start %s: %w", cfg.Name, err)
	}
	return &Tunnel{dev: dev, name: cfg.Name}, nil
}

// uapi is cfg in the configuration protocol of wireguard-go.
func uapi(cfg Config) string {
	var b strings.Builder
	hexKey := func(k Key) string { return hex.EncodeToString(k[:]) }
	fmt.Fprintf(&b, "private_key=%s\nlisten_port=%d\nreplace_peers=true\n", hexKey(cfg.PrivateKey), cfg.ListenPort)
	for _, p := range cfg.Peers {
		fmt.Fprintf(&b, "public_key=%s\nreplace_allowed_ips=true\n", hexKey(p.PublicKey))
		if p.Endpoint.IsValid() {
			fmt.Fprintf(&b, "endpoint=%s\n", p.Endpoint)
		}
		if p.Keepalive > 0 {
			fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", int(p.Keepalive.Seconds()))
		}
		for _, a := range p.AllowedIPs {
			fmt.Fprintf(&b, "allowed_ip=%s\n", a)
		}
	}
	return b.String()
}

// Stats is what a tunnel has carried.
type Stats struct {
	RxBytes, TxBytes uint64
	// LastHandshake is the latest handshake with any peer (zero: none).
	LastHandshake time.Time
}

// Stats reads the tunnel's counters.
func (t *Tunnel) Stats() (Stats, error) {
	out, err := t.dev.IpcGet()
	if err != nil {
		return Stats{}, fmt.Errorf("wireguard: read %s: %w", t.name, err)
	}
	var s Stats
	var sec int64
	for _, line := range bytes.Split([]byte(out), []byte("\n")) {
		k, v, _ := strings.Cut(string(line), "=")
		n, _ := strconv.ParseUint(v, 10, 64)
		switch k {
		case "rx_bytes":
			s.RxBytes += n
		case "tx_bytes":
			s.TxBytes += n
		case "last_handshake_time_sec":
			if int64(n) > sec {
				sec = int64(n)
			}
		}
	}
	if sec > 0 {
		s.LastHandshake = time.Unix(sec, 0)
	}
	return s, nil
}

// Name is the TUN device's name.
func (t *Tunnel) Name() string { return t.name }

// Close stops the tunnel and removes its TUN device.
func (t *Tunnel) Close() { t.dev.Close() }

// fixedMTU answers the MTU the device was made with: wireguard-go asks
// the kernel by name on a socket of the calling thread's namespace, which
// is not the TUN's when the TUN lives in another one.
type fixedMTU struct {
	tun.Device
	mtu int
}

func (f fixedMTU) MTU() (int, error) { return f.mtu, nil }

// nsBind opens the tunnel's UDP sockets in its namespace, whichever
// goroutine (re)opens them: wireguard-go does so when the device comes up,
// also from its own goroutines.
type nsBind struct {
	conn.Bind
	in func(func() error) error
}

func (b nsBind) Open(port uint16) (fns []conn.ReceiveFunc, actual uint16, err error) {
	inErr := b.in(func() error {
		fns, actual, err = b.Bind.Open(port)
		return nil
	})
	if inErr != nil {
		return nil, 0, inErr
	}
	return fns, actual, err
}
