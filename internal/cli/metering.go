package cli

import (
	"encoding/csv"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/servicemodel"
)

// csvOutput marks a command that also prints -o csv.
const csvOutput = "csv-output"

// usageCommand is `weft usage [--tenant T] [--from] [--to]`.
func (a *app) usageCommand() *cobra.Command {
	var tenant, from, to string
	cmd := &cobra.Command{
		Use:   "usage [--tenant T] [--from FROM] [--to TO]",
		Short: "Print what tenants used, hour by hour (-o json|csv for scripts)",
		Long: `Prints the hourly usage records of a tenant (of every tenant without --tenant) whose hour overlaps
FROM to TO. Both are RFC 3339 times (2026-12-01T10:00:00Z) or dates (2026-12-01, UTC); a date as --to includes
its whole day. FROM defaults to the start of this month, TO to now.

Meters: instance-seconds (by runtime/size), vm-seconds (persistent VMs, by size), disk-gib-hours (persistent
VMs' disks, as declared).`,
		Args:        maxArgs(0),
		Annotations: map[string]string{csvOutput: "yes"},
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := a.client().Usage(cmd.Context(), tenant, from, to)
			if err != nil {
				return err
			}
			switch a.output {
			case "json":
				return a.printJSON(nonNil(list))
			case "csv":
				w := csv.NewWriter(a.stdout)
				w.Write([]string{"hour", "tenant", "service", "meter", "dimension", "quantity", "unit"})
				for _, r := range list {
					w.Write([]string{r.Hour.UTC().Format("2006-01-02T15:04:05Z"), r.Tenant, r.Service, r.Meter, r.Dimension,
						strconv.FormatFloat(r.Quantity, 'f', -1, 64), r.Unit})
				}
				w.Flush()
				return w.Error()
			}
			w := a.table()
			row(w, "HOUR", "TENANT", "SERVICE", "METER", "DIMENSION", "QUANTITY", "UNIT")
			for _, r := range list {
				row(w, r.Hour.UTC().Format("2006-01-02 15:00"), r.Tenant, r.Service, r.Meter, orDash(r.Dimension),
					strconv.FormatFloat(r.Quantity, 'f', 3, 64), r.Unit)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "the tenant (default: every tenant)")
	cmd.Flags().StringVar(&from, "from", "", "from this time or date (default: the start of this month)")
	cmd.Flags().StringVar(&to, "to", "", "to this time, or to the end of this date (default: now)")
	return cmd
}

// ratecardCommand is `weft ratecard set FILE|show`.
func (a *app) ratecardCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ratecard",
		Short: "Set or show the prices bills are made with",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft ratecard set FILE|show")
		},
	}
	set := &cobra.Command{
		Use:   "set FILE",
		Short: "Replace the rate card with the one in FILE (YAML or JSON)",
		Long: `FILE gives a currency and, per meter, a price per unit as a decimal, optionally another price for
some of the meter's dimensions. A meter without a price costs nothing. For example:

  currency: EUR
  meters:
    instance-seconds:
      price: "0.0000125"           # per second
      dimensions:
        process/0.25cpu-128Mi: "0.000003"
    vm-seconds: {price: "0.00011"}
    disk-gib-hours: {price: "0.000137"}`,
		Args: exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var card api.RateCard
			if err := servicemodel.Decode(data, &card, "the rate card"); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if err := card.Validate(); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			saved, err := a.client().SetRateCard(cmd.Context(), card)
			if err != nil {
				return err
			}
			return a.printRateCard(saved)
		},
	}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the rate card",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			card, err := a.client().RateCard(cmd.Context())
			if err != nil {
				return err
			}
			return a.printRateCard(card)
		},
	}
	cmd.AddCommand(set, show)
	return cmd
}

func (a *app) printRateCard(card api.RateCard) error {
	if a.jsonOutput() {
		return a.printJSON(card)
	}
	w := a.table()
	row(w, "METER", "DIMENSION", "PRICE ("+card.Currency+")", "PER")
	for _, name := range api.MeterNames() {
		m, ok := card.Meters[name]
		if !ok {
			continue
		}
		row(w, name, "-", m.Price, api.MeterUnits[name])
		for _, dim := range slices.Sorted(maps.Keys(m.Dimensions)) {
			row(w, name, dim, m.Dimensions[dim], api.MeterUnits[name])
		}
	}
	return w.Flush()
}

// billCommand is `weft bill --tenant T --month YYYY-MM`.
func (a *app) billCommand() *cobra.Command {
	var tenant, month string
	cmd := &cobra.Command{
		Use:   "bill --tenant T --month YYYY-MM",
		Short: "Print a tenant's bill for a month under the current rate card",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tenant == "" || month == "" {
				return usagef("bill: --tenant and --month are required")
			}
			bill, err := a.client().Bill(cmd.Context(), tenant, month)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(bill)
			}
			w := a.table()
			row(w, "METER", "DIMENSION", "QUANTITY", "UNIT", "UNIT PRICE", "AMOUNT")
			for _, l := range bill.Lines {
				row(w, l.Meter, orDash(l.Dimension), strconv.FormatFloat(l.Quantity, 'f', -1, 64), l.Unit, l.UnitPrice, l.Amount)
			}
			row(w, "TOTAL", "", "", "", "", string(bill.Total)+" "+bill.Currency)
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "the tenant")
	cmd.Flags().StringVar(&month, "month", "", "the month, YYYY-MM (UTC)")
	return cmd
}
