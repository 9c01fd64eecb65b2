package storage

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
)

// ServiceProperties is the StorageServiceProperties document of Get and Set
// Blob, Queue and Table Service Properties. CORS rules take effect (through
// a Handler's CORSRules); the other settings (logging, metrics, retention,
// static website) are checked as XML, kept as written and returned.
// A nil element was not given.
type ServiceProperties struct {
	XMLName               xml.Name      `xml:"StorageServiceProperties"`
	Logging               *RawXML       `xml:"Logging,omitempty"`
	HourMetrics           *RawXML       `xml:"HourMetrics,omitempty"`
	MinuteMetrics         *RawXML       `xml:"MinuteMetrics,omitempty"`
	Cors                  *CORSRulesXML `xml:"Cors,omitempty"`
	DefaultServiceVersion *string       `xml:"DefaultServiceVersion,omitempty"`
	DeleteRetentionPolicy *RawXML       `xml:"DeleteRetentionPolicy,omitempty"`
	StaticWebsite         *RawXML       `xml:"StaticWebsite,omitempty"`
}

// RawXML is a settings element kept as written.
type RawXML struct {
	Inner string `xml:",innerxml"`
}

// CORSRulesXML is the Cors element: at most five rules.
type CORSRulesXML struct {
	Rules []CORSRuleXML `xml:"CorsRule"`
}

// CORSRuleXML is one CorsRule as the service properties write it: lists
// are comma-separated.
type CORSRuleXML struct {
	AllowedOrigins  string `xml:"AllowedOrigins"`
	AllowedMethods  string `xml:"AllowedMethods"`
	MaxAgeInSeconds int    `xml:"MaxAgeInSeconds"`
	ExposedHeaders  string `xml:"ExposedHeaders"`
	AllowedHeaders  string `xml:"AllowedHeaders"`
}

// DefaultServiceProperties is what an account that never set its
// properties gets from Get Service Properties: logging, metrics and CORS
// off, as Azure answers for a new account.
func DefaultServiceProperties() ServiceProperties {
	// Each element its own: decoding stored properties into these fills
	// them in place.
	const metrics = "<Version>1.0</Version><Enabled>false</Enabled><RetentionPolicy><Enabled>false</Enabled></RetentionPolicy>"
	return ServiceProperties{
		Logging:       &RawXML{Inner: "<Version>1.0</Version><Delete>false</Delete><Read>false</Read><Write>false</Write><RetentionPolicy><Enabled>false</Enabled></RetentionPolicy>"},
		HourMetrics:   &RawXML{Inner: metrics},
		MinuteMetrics: &RawXML{Inner: metrics},
		Cors:          &CORSRulesXML{},
	}
}

var corsMethods = map[string]bool{
	"DELETE": true, "GET": true, "HEAD": true, "MERGE": true, "POST": true, "OPTIONS": true, "PUT": true, "PATCH": true,
}

// ParseServiceProperties reads a Set Service Properties body. Malformed
// XML, more than five CORS rules, a rule without origins, with an unknown
// method or a negative max age are 400 InvalidXmlDocument, as Azure
// answers.
func ParseServiceProperties(body []byte) (*ServiceProperties, error) {
	var p ServiceProperties
	if err := xml.Unmarshal(body, &p); err != nil {
		return nil, invalidXML("XML specified is not syntactically valid.")
	}
	if p.Cors == nil {
		return &p, nil
	}
	if len(p.Cors.Rules) > 5 {
		return nil, invalidXML("A service has at most five CORS rules; %d were given.", len(p.Cors.Rules))
	}
	for _, r := range p.Cors.Rules {
		for m := range strings.SplitSeq(r.AllowedMethods, ",") {
			if !corsMethods[strings.ToUpper(strings.TrimSpace(m))] {
				return nil, invalidXML("The CORS method %q is not one of DELETE, GET, HEAD, MERGE, POST, OPTIONS, PUT and PATCH.", m)
			}
		}
		if r.AllowedOrigins == "" || r.MaxAgeInSeconds < 0 {
			return nil, invalidXML("A CORS rule needs allowed origins and a max age of 0 or more.")
		}
	}
	return &p, nil
}

// Apply sets the elements in holds; those it leaves out keep their
// settings, as Set Service Properties does.
func (p *ServiceProperties) Apply(in *ServiceProperties) {
	set := func(dst **RawXML, src *RawXML) {
		if src != nil {
			*dst = src
		}
	}
	set(&p.Logging, in.Logging)
	set(&p.HourMetrics, in.HourMetrics)
	set(&p.MinuteMetrics, in.MinuteMetrics)
	set(&p.DeleteRetentionPolicy, in.DeleteRetentionPolicy)
	set(&p.StaticWebsite, in.StaticWebsite)
	if in.Cors != nil {
		p.Cors = in.Cors
	}
	if in.DefaultServiceVersion != nil {
		p.DefaultServiceVersion = in.DefaultServiceVersion
	}
}

// DecodeServiceProperties reads an account's properties as a service keeps
// them (UpdateServiceProperties' JSON); nothing stored is the defaults. A
// document that starts with '<' is the XML of a Set Service Properties
// body, the form the queue service kept before it kept this one.
func DecodeServiceProperties(stored []byte) (ServiceProperties, error) {
	props := DefaultServiceProperties()
	stored = bytes.TrimSpace(stored)
	switch {
	case len(stored) == 0:
		return props, nil
	case stored[0] == '<':
		var in ServiceProperties
		if err := xml.Unmarshal(stored, &in); err != nil {
			return props, fmt.Errorf("storage: decode service properties: %w", err)
		}
		props.Apply(&in)
	default:
		if err := json.Unmarshal(stored, &props); err != nil {
			return props, fmt.Errorf("storage: decode service properties: %w", err)
		}
	}
	return props, nil
}

// UpdateServiceProperties applies in (a Set Service Properties body, from
// ParseServiceProperties) to the properties stored and returns what to
// store in their place.
func UpdateServiceProperties(stored []byte, in *ServiceProperties) ([]byte, error) {
	props, err := DecodeServiceProperties(stored)
	if err != nil {
		return nil, err
	}
	props.Apply(in)
	out, err := json.Marshal(props)
	if err != nil {
		return nil, fmt.Errorf("storage: encode service properties: %w", err)
	}
	return out, nil
}

// CORSRules returns the CORS rules the front end applies, nil when none.
func (p *ServiceProperties) CORSRules() []CORSRule {
	if p.Cors == nil {
		return nil
	}
	split := func(v string) []string {
		var out []string
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	var rules []CORSRule
	for _, r := range p.Cors.Rules {
		rules = append(rules, CORSRule{
			AllowedOrigins:  split(r.AllowedOrigins),
			AllowedMethods:  split(r.AllowedMethods),
			AllowedHeaders:  split(r.AllowedHeaders),
			ExposedHeaders:  split(r.ExposedHeaders),
			MaxAgeInSeconds: r.MaxAgeInSeconds,
		})
	}
	return rules
}

// ServiceStats is the answer of Get Service Stats. Weft keeps one copy
// per location, so replication to the secondary is always "live".
type ServiceStats struct {
	XMLName      xml.Name `xml:"StorageServiceStats"`
	Status       string   `xml:"GeoReplication>Status"`
	LastSyncTime string   `xml:"GeoReplication>LastSyncTime"`
}

// PropertiesStore is where a service keeps its accounts' service
// properties, in the form UpdateServiceProperties gives.
type PropertiesStore interface {
	// StoredProperties is what account has stored, nil when nothing.
	StoredProperties(account string) ([]byte, error)
	// UpdateProperties stores, durably, what change makes of what
	// account has stored.
	UpdateProperties(account string, change func(stored []byte) ([]byte, error)) error
}

// LoadServiceProperties reads account's properties from ps, the defaults
// where it stored none.
func LoadServiceProperties(ps PropertiesStore, account string) (ServiceProperties, error) {
	stored, err := ps.StoredProperties(account)
	if err != nil {
		return ServiceProperties{}, err
	}
	props, err := DecodeServiceProperties(stored)
	if err != nil {
		return props, fmt.Errorf("service properties of %s: %w", account, err)
	}
	return props, nil
}

// GetServiceProperties answers Get Service Properties from ps.
func GetServiceProperties(w http.ResponseWriter, req *Request, ps PropertiesStore) error {
	if err := req.Allow('r', ResService); err != nil {
		return err
	}
	props, err := LoadServiceProperties(ps, req.Account)
	if err != nil {
		return err
	}
	return WriteXML(w, http.StatusOK, props)
}

// SetServiceProperties answers Set Service Properties: it sets the
// elements the request holds in ps; those it leaves out keep their
// settings.
func SetServiceProperties(w http.ResponseWriter, r *http.Request, req *Request, ps PropertiesStore) error {
	if err := req.Allow('w', ResService); err != nil {
		return err
	}
	body, err := ReadBody(r.Body, 64<<10)
	if err != nil {
		return err
	}
	in, err := ParseServiceProperties(body)
	if err != nil {
		return err
	}
	err = ps.UpdateProperties(req.Account, func(stored []byte) ([]byte, error) { return UpdateServiceProperties(stored, in) })
	if err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// AccountCORSRules returns account's CORS rules from ps, for the front
// end's answers to preflight and cross-origin requests; none when they
// cannot be read (logged).
func AccountCORSRules(ps PropertiesStore, account string, log *slog.Logger) []CORSRule {
	props, err := LoadServiceProperties(ps, account)
	if err != nil {
		log.Warn("reading CORS rules", "account", account, "err", err)
		return nil
	}
	return props.CORSRules()
}
