package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/cluster"
	"github.com/weftcloud/weft/internal/pki"
	"github.com/weftcloud/weft/internal/raftstore"
)

// operatorCommand is `weft operator members|remove-peer|storage|snapshot save|restore|recover`.
func (a *app) operatorCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Run the controller cluster: members, removing a server, storage placement, snapshots",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft operator members|remove-peer|storage|snapshot save|snapshot restore|recover")
		},
	}
	members := &cobra.Command{
		Use:   "members",
		Short: "List the controller servers and which one leads",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := a.client().Members(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(nonNil(list))
			}
			w := a.table()
			row(w, "NAME", "ADDRESS", "LEADER", "VOTER", "API")
			for _, m := range list {
				row(w, m.Name, m.Address, m.Leader, m.Voter, orDash(m.API))
			}
			return w.Flush()
		},
	}
	removePeer := &cobra.Command{
		Use:   "remove-peer NAME",
		Short: "Remove a server from the cluster (one that is gone for good)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().RemovePeer(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "removed %s from the cluster\n", args[0])
			return nil
		},
	}
	var data, name string
	var peers []string
	recover := &cobra.Command{
		Use:   "recover --data DIR --name NAME --peer NAME=LISTEN [--peer ...]",
		Short: "Make the surviving servers of a cluster that lost its quorum a cluster of their own (offline)",
		Long: `When a majority of a cluster's servers is lost for good, no leader can be elected and remove-peer,
which needs one, cannot help. Stop every surviving server, run this on each of them with its own --data and
--name and the same --peer list (every survivor, by its name and --listen address), then start them: they
elect a leader among themselves. What only the lost servers had committed is lost; a lost server must not
come back with its old data (remove its data folder and join it again).`,
		Args: maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if data == "" || name == "" || len(peers) == 0 {
				return usagef("operator recover: --data, --name and at least one --peer NAME=LISTEN are required")
			}
			var list []raftstore.Peer
			for _, p := range peers {
				id, listen, ok := strings.Cut(p, "=")
				if !ok || id == "" {
					return usagef("operator recover: --peer %q: want NAME=LISTEN, e.g. s1=10.0.0.1:7070", p)
				}
				addr, err := cluster.RaftAddress(listen)
				if err != nil {
					return usagef("operator recover: --peer %s: %v", p, err)
				}
				list = append(list, raftstore.Peer{ID: id, Addr: addr})
			}
			if err := raftstore.Recover(data, name, list, slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s is now one of %d servers; start it, and the other survivors recovered the same way\n", name, len(list))
			return nil
		},
	}
	recover.Flags().StringVar(&data, "data", "", "the stopped server's data folder")
	recover.Flags().StringVar(&name, "name", "", "the server's name (its --name)")
	recover.Flags().StringArrayVar(&peers, "peer", nil, "a surviving server, NAME=LISTEN (repeatable; include this one)")
	snapshot := &cobra.Command{
		Use:   "snapshot",
		Short: "Save or restore the cluster's whole state",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft operator snapshot save FILE | restore FILE")
		},
	}
	snapshot.AddCommand(&cobra.Command{
		Use:   "save FILE",
		Short: "Write a snapshot of the state to FILE",
		Args:  exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := atomicfile.Write(args[0], func(f *os.File) error { return a.client().SaveSnapshot(cmd.Context(), f) })
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "snapshot saved to %s\n", args[0])
			return nil
		},
	}, &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the cluster's whole state with the snapshot in FILE",
		Args:  exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			if err := a.client().RestoreSnapshot(cmd.Context(), f); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "state restored from %s\n", args[0])
			return nil
		},
	})
	storage := &cobra.Command{
		Use:   "storage",
		Short: "Show which server's storage is the primary and which replicas are in sync",
		Long: `Show the storage placement: its epoch (it grows whenever the primary changes), the primary, and
each server that registered its storage service with its role and blob, queue and table endpoints:
  primary      serves every storage request (other servers forward to it)
  in-sync      a replica that holds every acknowledged write; it can take over from the primary
  out-of-sync  not in the in-sync set: catching up from the primary, or unreachable; it cannot take over
With -o json it prints the placement as GET /v1/storage/config answers it. Before a primary is chosen,
or when every server runs with --no-storage, it fails.`,
		Args: maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.client().StoragePlacement(cmd.Context())
			if err != nil {
				return err
			}
			if err := noPlacement(p); err != nil {
				return err
			}
			if a.jsonOutput() {
				p.Members = nonNil(p.Members)
				p.Config.InSync = nonNil(p.Config.InSync)
				return a.printJSON(p)
			}
			return a.printPlacement(p)
		},
	}
	cmd.AddCommand(members, removePeer, storage, snapshot, recover)
	return cmd
}

// noPlacement explains a placement without a primary (epoch 0): no
// server registered its storage (all run with --no-storage), or the
// leader has not chosen yet (none of the registered servers answered it).
func noPlacement(p api.StoragePlacement) error {
	if p.Config.Epoch != 0 {
		return nil
	}
	if len(p.Members) == 0 {
		return errors.New("storage: no server has registered a storage service: do all the servers run with --no-storage?")
	}
	names := make([]string, len(p.Members))
	for i, m := range p.Members {
		names[i] = m.Name
	}
	return fmt.Errorf("storage: no primary chosen yet (registered: %s): the leader chooses one as soon as its storage answers", strings.Join(names, ", "))
}

// Roles of a storage member in `weft operator storage`.
const (
	rolePrimary   = "primary"
	roleInSync    = "in-sync"
	roleOutOfSync = "out-of-sync"
)

// printPlacement writes the configuration and then one row per member.
// A name the configuration holds that no member record matches (it should
// not happen) gets a row of its own, without endpoints, rather than
// vanishing from the table.
func (a *app) printPlacement(p api.StoragePlacement) error {
	cfg := p.Config
	members := slices.Clone(p.Members)
	for _, name := range append([]string{cfg.Primary}, cfg.InSync...) {
		if name != "" && !slices.ContainsFunc(members, func(m api.StorageMember) bool { return m.Name == name }) {
			members = append(members, api.StorageMember{Name: name})
		}
	}
	w := a.table()
	row(w, "Epoch:", cfg.Epoch)
	row(w, "Primary:", orDash(cfg.Primary))
	row(w, "In sync:", fmt.Sprintf("%s (%d of %d members)", strings.Join(cfg.InSync, ", "), len(cfg.InSync), len(members)))
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)

	w = a.table()
	row(w, "NAME", "ROLE", "BLOB", "QUEUE", "TABLE")
	for _, m := range members {
		role := roleOutOfSync
		switch {
		case m.Name == cfg.Primary:
			role = rolePrimary
		case slices.Contains(cfg.InSync, m.Name):
			role = roleInSync
		}
		row(w, m.Name, role, orDash(m.Blob), orDash(m.Queue), orDash(m.Table))
	}
	return w.Flush()
}

// tlsCommand is `weft tls init` and `weft tls rotate-join-token`.
func (a *app) tlsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tls",
		Short: "Make the credentials of a cluster that talks TLS",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft tls init --dir DIR [--host NAME_OR_IP ...] | weft tls server --dir DIR --name NAME | weft tls rotate-join-token")
		},
	}
	var dir string
	var hosts []string
	initCmd := &cobra.Command{
		Use:   "init --dir DIR [--host NAME_OR_IP ...]",
		Short: "Make a cluster CA, the servers' certificate, an API token and a join token",
		Long: `Make a cluster CA, a certificate for the servers (valid for --host names and addresses, localhost
and 127.0.0.1), an API token (admin.token) and a join token (join.token). Give the folder to every server
(weft server --tls-dir DIR): the servers sign the certificates of joining agents with ca-key.pem, so keep
the folder on the servers only, readable by root alone. Give agents ca.pem and the join token (weft agent
--join-token --ca-cert): each gets a certificate of its own for its node name. Give API users ca.pem and
the API token (WEFT_CA_CERT, WEFT_TOKEN).`,
		Args: maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				return usagef("--dir: the folder for the credentials is required")
			}
			if err := pki.Init(dir, hosts); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "credentials in %s: ca.pem, ca-key.pem, server.pem, admin.token, join.token\n", dir)
			return nil
		},
	}
	initCmd.Flags().StringVar(&dir, "dir", "", "the folder to write the credentials to")
	initCmd.Flags().StringSliceVar(&hosts, "host", nil, "a server's name or address (repeatable)")
	rotate := &cobra.Command{
		Use:   "rotate-join-token",
		Short: "Replace the join token agents trade for a certificate; every server refuses the old one",
		Long: `Make a new join token and keep its hash in the cluster's replicated state: from then on every server
accepts only the new one (not join.token of weft tls init). The token is printed once. Agents that already
joined keep their certificates; give the new token to those that join from now on (weft agent --join-token).`,
		Args: maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := a.client().RotateJoinToken(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(tok)
			}
			_, err = fmt.Fprintf(a.stdout, "new join token: %s\nevery server refuses the old one; agents joining from now on need this one\n", tok.Token)
			return err
		},
	}
	var serverDir, serverName string
	var serverHosts []string
	serverCmd := &cobra.Command{
		Use:   "server --dir DIR --name NAME [--host NAME_OR_IP ...]",
		Short: "Make a server its own certificate, which a server joining a running cluster needs",
		Long: `Make server NAME (its weft server --name) a certificate of its own in DIR, the folder of weft tls init,
signed by its CA and valid for --host names and addresses, localhost and 127.0.0.1. A server given DIR
uses its own certificate when DIR holds one. A server that joins a running cluster (--join without
--bootstrap-expect) needs one: the cluster adds it to Raft only under the name its certificate gives.`,
		Args: maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if serverDir == "" || serverName == "" {
				return usagef("tls server: --dir and --name are required")
			}
			if err := pki.IssueServer(serverDir, serverName, serverHosts); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "certificate of server %s in %s: server-%s.pem, server-%s-key.pem\n", serverName, serverDir, serverName, serverName)
			return nil
		},
	}
	serverCmd.Flags().StringVar(&serverDir, "dir", "", "the folder of weft tls init")
	serverCmd.Flags().StringVar(&serverName, "name", "", "the server's name (its weft server --name)")
	serverCmd.Flags().StringSliceVar(&serverHosts, "host", nil, "the server's name or address (repeatable)")
	cmd.AddCommand(initCmd, rotate, serverCmd)
	return cmd
}
