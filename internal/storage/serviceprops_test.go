package storage

import "testing"

// TestUpdateServiceProperties sets one element at a time and reads the
// stored properties back: each keeps its own value (HourMetrics and
// MinuteMetrics once shared one default and overwrote each other), and a
// document the queue service kept as XML reads as the same properties.
func TestUpdateServiceProperties(t *testing.T) {
	const hour = `<Version>1.0</Version><Enabled>true</Enabled><IncludeAPIs>false</IncludeAPIs><RetentionPolicy><Enabled>false</Enabled></RetentionPolicy>`
	in, err := ParseServiceProperties([]byte(`<StorageServiceProperties><HourMetrics>` + hour + `</HourMetrics></StorageServiceProperties>`))
	if err != nil {
		t.Fatal(err)
	}
	stored, err := UpdateServiceProperties(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := ParseServiceProperties([]byte(`<StorageServiceProperties><Cors><CorsRule><AllowedOrigins>*</AllowedOrigins><AllowedMethods>GET</AllowedMethods><MaxAgeInSeconds>5</MaxAgeInSeconds><ExposedHeaders/><AllowedHeaders/></CorsRule></Cors></StorageServiceProperties>`))
	if err != nil {
		t.Fatal(err)
	}
	if stored, err = UpdateServiceProperties(stored, rules); err != nil {
		t.Fatal(err)
	}
	def := DefaultServiceProperties()
	for name, stored := range map[string][]byte{
		"JSON": stored,
		"XML":  []byte(`<?xml version="1.0" encoding="utf-8"?><StorageServiceProperties><HourMetrics>` + hour + `</HourMetrics><Cors><CorsRule><AllowedOrigins>*</AllowedOrigins><AllowedMethods>GET</AllowedMethods><MaxAgeInSeconds>5</MaxAgeInSeconds><ExposedHeaders/><AllowedHeaders/></CorsRule></Cors></StorageServiceProperties>`),
	} {
		got, err := DecodeServiceProperties(stored)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.HourMetrics.Inner != hour || got.MinuteMetrics.Inner != def.MinuteMetrics.Inner || got.Logging.Inner != def.Logging.Inner {
			t.Errorf("%s: hour %q, minute %q, logging %q", name, got.HourMetrics.Inner, got.MinuteMetrics.Inner, got.Logging.Inner)
		}
		if r := got.CORSRules(); len(r) != 1 || r[0].MaxAgeInSeconds != 5 {
			t.Errorf("%s: CORS rules %+v", name, r)
		}
	}
	if _, err := DecodeServiceProperties([]byte("{")); err == nil {
		t.Error("a damaged record decoded")
	}
}
