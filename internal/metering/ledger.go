package metering

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

// Ledger reads the usage buckets and keeps the rate card.
type Ledger struct{ store state.Store }

// NewLedger returns the ledger over store.
func NewLedger(store state.Store) *Ledger { return &Ledger{store: store} }

// Usage returns the buckets of tenant (every tenant's when tenant is "")
// whose hour overlaps [from, to), ordered by tenant, hour, meter,
// dimension and service.
func (l *Ledger) Usage(tenant string, from, to time.Time) []api.UsageRecord {
	prefix := ""
	if tenant != "" {
		prefix = tenant + "/"
	}
	first := from.UTC().Truncate(time.Hour)
	var out []api.UsageRecord
	for _, e := range l.store.List(state.KindUsage, prefix) {
		var r api.UsageRecord
		if err := json.Unmarshal(e.Value, &r); err != nil {
			continue
		}
		if !r.Hour.Before(first) && r.Hour.Before(to) {
			out = append(out, r)
		}
	}
	return out
}

// RateCard returns the rate card, and false when the operator set none.
func (l *Ledger) RateCard() (api.RateCard, bool) {
	e, ok := l.store.Get(state.KindMetering, rateCardKey)
	if !ok {
		return api.RateCard{}, false
	}
	var c api.RateCard
	if err := json.Unmarshal(e.Value, &c); err != nil {
		return api.RateCard{}, false
	}
	return c, true
}

// SetRateCard replaces the rate card. An invalid card (see
// api.RateCard.Validate) is refused with CodeInvalid and the stored one
// kept.
func (l *Ledger) SetRateCard(ctx context.Context, c api.RateCard) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if _, err := l.store.Apply(ctx, []state.Op{putJSON(state.KindMetering, rateCardKey, c)}); err != nil {
		return fmt.Errorf("metering: set rate card: %w", err)
	}
	return nil
}

// ParseMonth reads "2026-12" as the month's first instant, UTC.
func ParseMonth(s string) (time.Time, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a month written YYYY-MM", s)
	}
	return t, nil
}

// Bill is what tenant owes for the month starting at month under the
// current rate card: a line per meter and dimension used, quantities
// rounded to AmountDecimals places, each amount their product with the
// unit price rounded half away from zero to AmountDecimals places, and the
// total the sum of the amounts. Quantities and prices are multiplied as
// exact rationals, so no float rounding reaches the money. A meter the
// card has no price for costs nothing. It returns CodeNotFound when no rate
// card is set.
func (l *Ledger) Bill(tenant string, month time.Time) (api.Bill, error) {
	card, ok := l.RateCard()
	if !ok {
		return api.Bill{}, api.Errorf(api.CodeNotFound, "no rate card is set (weft ratecard set FILE)")
	}
	type lineKey struct{ meter, dim string }
	sums := map[lineKey]float64{}
	for _, r := range l.Usage(tenant, month, month.AddDate(0, 1, 0)) {
		sums[lineKey{r.Meter, r.Dimension}] += r.Quantity
	}
	bill := api.Bill{Tenant: tenant, Month: month.Format("2006-01"), Currency: card.Currency, Lines: []api.BillLine{}}
	total := new(big.Rat)
	for k, q := range sums {
		price := card.Meters[k.meter].Price
		if p, ok := card.Meters[k.meter].Dimensions[k.dim]; ok {
			price = p
		}
		if price == "" {
			price = "0"
		}
		unit, err := price.Rat()
		if err != nil {
			return api.Bill{}, fmt.Errorf("metering: stored rate card: meters.%s: %w", k.meter, err)
		}
		qty, _ := new(big.Rat).SetString(new(big.Rat).SetFloat64(q).FloatString(api.AmountDecimals))
		amount, _ := new(big.Rat).SetString(new(big.Rat).Mul(qty, unit).FloatString(api.AmountDecimals))
		total.Add(total, amount)
		qf, _ := qty.Float64()
		bill.Lines = append(bill.Lines, api.BillLine{Meter: k.meter, Dimension: k.dim, Quantity: qf,
			Unit: api.MeterUnits[k.meter], UnitPrice: price, Amount: api.Decimal(amount.FloatString(api.AmountDecimals))})
	}
	slices.SortFunc(bill.Lines, func(a, b api.BillLine) int {
		return cmp.Or(cmp.Compare(a.Meter, b.Meter), cmp.Compare(a.Dimension, b.Dimension))
	})
	bill.Total = api.Decimal(total.FloatString(api.AmountDecimals))
	return bill, nil
}
