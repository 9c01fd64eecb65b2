package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

// storageAccountCommand is `weft storage account create|list|keys|regenerate|delete`.
func (a *app) storageAccountCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "account",
		Short: "Manage the storage service's accounts",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft storage account create|list|keys|regenerate|delete")
		},
	}
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a storage account",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			acct, err := a.client().CreateStorageAccount(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(acct)
			}
			w := a.table()
			row(w, "Name:", acct.Name)
			for _, k := range []string{"blob", "queue", "table"} {
				row(w, k+":", orDash(acct.Endpoints[k]))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "its keys: weft storage account keys %s\n", acct.Name)
			return nil
		},
	}
	list := a.allTenantsFlag(&cobra.Command{
		Use:   "list",
		Short: "List storage accounts",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			accts, err := a.client().StorageAccounts(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(nonNil(accts))
			}
			w := a.table()
			row(w, a.tenantCol("TENANT", "NAME", "BLOB", "QUEUE", "TABLE", "CREATED")...)
			for _, acct := range accts {
				row(w, a.tenantCol(acct.Tenant, acct.Name, orDash(acct.Endpoints["blob"]), orDash(acct.Endpoints["queue"]), orDash(acct.Endpoints["table"]), age(a.now(), acct.CreatedAt))...)
			}
			return w.Flush()
		},
	})
	keys := &cobra.Command{
		Use:   "keys NAME",
		Short: "Show an account's keys and connection string",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := a.client().StorageAccountKeys(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printKeys(k.Name, k.Key1, k.Key2, k.ConnectionString, k)
		},
	}
	regen := &cobra.Command{
		Use:   "regenerate NAME key1|key2",
		Short: "Replace one of an account's keys",
		Args:  exactArgs("NAME", "KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[1] != "key1" && args[1] != "key2" {
				return usagef("storage account regenerate: %q is not key1 or key2", args[1])
			}
			k, err := a.client().RegenerateStorageAccountKey(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return a.printKeys(k.Name, k.Key1, k.Key2, k.ConnectionString, k)
		},
	}
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a storage account and its data",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteStorageAccount(cmd.Context(), args[0]); err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(map[string]string{"name": args[0], "status": "deleted"})
			}
			_, err := fmt.Fprintf(a.stdout, "storage account %s: deleted\n", args[0])
			return err
		},
	}
	cmd.AddCommand(create, list, keys, regen, del)
	return cmd
}

func (a *app) printKeys(name, key1, key2, conn string, v any) error {
	if a.jsonOutput() {
		return a.printJSON(v)
	}
	w := a.table()
	row(w, "Name:", name)
	row(w, "Key1:", key1)
	row(w, "Key2:", key2)
	row(w, "Connection string:", conn)
	return w.Flush()
}
