package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Metering: what each tenant used, hour by hour, and what it costs.
//
//	GET /v1/usage?tenant=T&from=&to=   -> []UsageRecord
//	GET /v1/ratecard                   -> RateCard (404 until one is set)
//	PUT /v1/ratecard                   RateCard -> RateCard
//	GET /v1/bills?tenant=T&month=YYYY-MM -> Bill

// Meters. The names are stable: usage records, CSV and rate cards use them.
const (
	// MeterInstanceSeconds: seconds an instance ran, by runtime and size
	// (Dimension "process/0.25cpu-128Mi"). Persistent VMs are vm-seconds.
	MeterInstanceSeconds = "instance-seconds"
	// MeterVMSeconds: seconds a persistent VM ran, by size ("2cpu-4Gi").
	MeterVMSeconds = "vm-seconds"
	// MeterDiskGiBHours: the declared sizes of persistent VMs' disks, in
	// GiB-hours, running or not (the page blobs exist either way).
	MeterDiskGiBHours = "disk-gib-hours"
	// MeterStorageTransactions: requests a storage account made of the
	// blob, queue and table services (Service is the account).
	MeterStorageTransactions = "storage-transactions"
	// MeterLBGiB: GiB through a service's public endpoints, both ways.
	MeterLBGiB = "lb-gib"
	// MeterStorageGiBHours: the bytes in a storage account's blobs, in
	// GiB-hours (Service is the account).
	MeterStorageGiBHours = "storage-gib-hours"
)

// MeterUnits is every meter and the unit its quantities are in.
var MeterUnits = map[string]string{
	MeterInstanceSeconds:     "second",
	MeterVMSeconds:           "second",
	MeterDiskGiBHours:        "GiB-hour",
	MeterStorageTransactions: "transaction",
	MeterLBGiB:               "GiB",
	MeterStorageGiBHours:     "GiB-hour",
}

// UsageRecord is one hour of one meter for one service of a tenant: the
// total used in [Hour, Hour+1h).
type UsageRecord struct {
	Tenant    string    `json:"tenant"`
	Service   string    `json:"service"`
	Hour      time.Time `json:"hour"` // UTC, on the hour
	Meter     string    `json:"meter"`
	Dimension string    `json:"dimension,omitempty"`
	Quantity  float64   `json:"quantity"`
	Unit      string    `json:"unit"`
}

// SizeDimension names an instance size in usage records and rate cards:
// "0.25cpu-128Mi".
func SizeDimension(s Size) string {
	return fmt.Sprintf("%scpu-%s", formatFloat(s.CPU), s.Memory)
}

func formatFloat(f float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", f), "0"), ".")
}

// Decimal is an exact decimal number written as a string ("0.0000125");
// in JSON it may also be a bare number, read digit for digit, never
// through a float.
type Decimal string

func (d *Decimal) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		*d = Decimal(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(data, &n); err != nil {
		return fmt.Errorf("a decimal is a string or a number, not %s", data)
	}
	*d = Decimal(n)
	return nil
}

var decimalRE = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// Rat parses the decimal exactly.
func (d Decimal) Rat() (*big.Rat, error) {
	s := strings.TrimSpace(string(d))
	if !decimalRE.MatchString(s) {
		return nil, fmt.Errorf("%q is not a decimal number (digits, an optional point and digits)", string(d))
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, fmt.Errorf("%q is not a decimal number", string(d))
	}
	return r, nil
}

// RateCard is what the operator charges: a price per unit of each meter,
// optionally another for some of the meter's dimensions. A meter without a
// price costs nothing (its bill lines show a unit price of 0).
type RateCard struct {
	Currency string                `json:"currency" yaml:"currency"` // e.g. "EUR"
	Meters   map[string]MeterPrice `json:"meters" yaml:"meters"`
}

// MeterPrice is the price of one unit of a meter.
type MeterPrice struct {
	Price Decimal `json:"price" yaml:"price"`
	// Dimensions override Price for these dimensions of the meter
	// (e.g. "process/0.25cpu-128Mi").
	Dimensions map[string]Decimal `json:"dimensions,omitempty" yaml:"dimensions,omitempty"`
}

var currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)

// Validate names the first field that is wrong: a currency that is not
// three capital letters, an unknown meter, a price that is not a
// non-negative decimal.
func (c RateCard) Validate() error {
	if !currencyRE.MatchString(c.Currency) {
		return Errorf(CodeInvalid, "currency: %q is not a three-letter code such as EUR", c.Currency)
	}
	if len(c.Meters) == 0 {
		return Errorf(CodeInvalid, "meters: no meter has a price")
	}
	names := make([]string, 0, len(c.Meters))
	for name := range c.Meters {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if _, ok := MeterUnits[name]; !ok {
			return Errorf(CodeInvalid, "meters.%s: unknown meter (known: %s)", name, strings.Join(MeterNames(), ", "))
		}
		m := c.Meters[name]
		if err := checkPrice(m.Price); err != nil {
			return Errorf(CodeInvalid, "meters.%s.price: %v", name, err)
		}
		for dim, p := range m.Dimensions {
			if err := checkPrice(p); err != nil {
				return Errorf(CodeInvalid, "meters.%s.dimensions.%s: %v", name, dim, err)
			}
		}
	}
	return nil
}

func checkPrice(d Decimal) error {
	r, err := d.Rat()
	if err != nil {
		return err
	}
	if r.Sign() < 0 {
		return fmt.Errorf("%s is negative", d)
	}
	return nil
}

// MeterNames lists the meters, sorted.
func MeterNames() []string {
	names := make([]string, 0, len(MeterUnits))
	for n := range MeterUnits {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Bill is what a tenant owes for one calendar month (UTC) under the rate
// card in force when it is asked for. Amounts are decimal strings rounded
// half away from zero to AmountDecimals places; Total is the sum of the
// lines' amounts.
type Bill struct {
	Tenant   string     `json:"tenant"`
	Month    string     `json:"month"` // "2026-12"
	Currency string     `json:"currency"`
	Lines    []BillLine `json:"lines"`
	Total    Decimal    `json:"total"`
}

// AmountDecimals is how many decimal places a bill's amounts have
// (micro-units of the currency).
const AmountDecimals = 6

// BillLine is one meter and dimension of a bill, summed over the tenant's
// services.
type BillLine struct {
	Meter     string  `json:"meter"`
	Dimension string  `json:"dimension,omitempty"`
	Quantity  float64 `json:"quantity"`
	Unit      string  `json:"unit"`
	UnitPrice Decimal `json:"unitPrice"`
	Amount    Decimal `json:"amount"`
}
