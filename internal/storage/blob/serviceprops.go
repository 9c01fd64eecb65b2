package blob

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strings"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/boltlog"
)

var _ storage.CORSRules = (*Service)(nil)

// rawXML keeps a settings element we accept and return but do not act on
// (logging, metrics, retention, static website).
type rawXML struct {
	Inner string `xml:",innerxml"`
}

type corsRuleXML struct {
	AllowedOrigins  string `xml:"AllowedOrigins"`
	AllowedMethods  string `xml:"AllowedMethods"`
	MaxAgeInSeconds int    `xml:"MaxAgeInSeconds"`
	ExposedHeaders  string `xml:"ExposedHeaders"`
	AllowedHeaders  string `xml:"AllowedHeaders"`
}

type corsXML struct {
	Rules []corsRuleXML `xml:"CorsRule"`
}

type servicePropsXML struct {
	XMLName               xml.Name `xml:"StorageServiceProperties"`
	Logging               *rawXML  `xml:"Logging,omitempty"`
	HourMetrics           *rawXML  `xml:"HourMetrics,omitempty"`
	MinuteMetrics         *rawXML  `xml:"MinuteMetrics,omitempty"`
	Cors                  *corsXML `xml:"Cors,omitempty"`
	DefaultServiceVersion *string  `xml:"DefaultServiceVersion,omitempty"`
	DeleteRetentionPolicy *rawXML  `xml:"DeleteRetentionPolicy,omitempty"`
	StaticWebsite         *rawXML  `xml:"StaticWebsite,omitempty"`
	// ContainerDeleteRetentionPolicy is container soft delete. Azure sets
	// it through its management API (the storage account's blobServices
	// resource), not here; Weft, which has no such API, takes it in Set
	// Blob Service Properties, in the same shape as DeleteRetentionPolicy.
	ContainerDeleteRetentionPolicy *rawXML `xml:"ContainerDeleteRetentionPolicy,omitempty"`
}

// defaultServiceProps are Azure's defaults. Each element has its own value:
// stored settings are decoded over them, and a shared one would take the
// last element decoded into it (hour metrics came back as minute metrics).
func defaultServiceProps() servicePropsXML {
	metrics := "<Version>1.0</Version><Enabled>false</Enabled><RetentionPolicy><Enabled>false</Enabled></RetentionPolicy>"
	return servicePropsXML{
		Logging:               &rawXML{Inner: "<Version>1.0</Version><Delete>false</Delete><Read>false</Read><Write>false</Write><RetentionPolicy><Enabled>false</Enabled></RetentionPolicy>"},
		HourMetrics:           &rawXML{Inner: metrics},
		MinuteMetrics:         &rawXML{Inner: metrics},
		Cors:                  &corsXML{},
		DeleteRetentionPolicy: &rawXML{Inner: "<Enabled>false</Enabled>"},
		StaticWebsite:         &rawXML{Inner: "<Enabled>false</Enabled>"},
	}
}

func (s *Service) loadServiceProps(account string) (servicePropsXML, error) {
	props := defaultServiceProps()
	err := s.view(func(tx *boltlog.Tx) error {
		_, err := getJSON(tx.Bucket(bktService), []byte(account), &props)
		return err
	})
	return props, err
}

// getServiceProps answers Get Blob Service Properties; an account that never
// set them gets Azure's defaults (everything off).
func (s *Service) getServiceProps(c *call) error {
	if err := s.allow(c, "r", storage.ResService, ""); err != nil {
		return err
	}
	props, err := s.loadServiceProps(c.req.Account)
	if err != nil {
		return err
	}
	return storage.WriteXML(c.w, http.StatusOK, props)
}

var corsMethods = map[string]bool{
	"DELETE": true, "GET": true, "HEAD": true, "MERGE": true, "POST": true, "OPTIONS": true, "PUT": true, "PATCH": true,
}

// check refuses settings Set Blob Service Properties does not take: more
// than five CORS rules, a rule without origins, with an unknown method or a
// negative max age, a delete retention enabled for other than 1 to 365
// days (400 InvalidXmlDocument).
func (p *servicePropsXML) check() error {
	if r, err := parseRetention(p.DeleteRetentionPolicy); err != nil {
		return err
	} else if r.Enabled && (r.Days < 1 || r.Days > 365) {
		// Azure keeps deleted blobs for 1 to 365 days.
		return errXML()
	}
	if r, err := parseRetention(p.ContainerDeleteRetentionPolicy); err != nil {
		return err
	} else if r.Enabled && (r.Days < 1 || r.Days > 365) {
		// And deleted containers as long.
		return errXML()
	}
	if p.Cors == nil {
		return nil
	}
	if len(p.Cors.Rules) > 5 {
		return errXML()
	}
	for _, r := range p.Cors.Rules {
		for m := range strings.SplitSeq(r.AllowedMethods, ",") {
			if !corsMethods[strings.ToUpper(strings.TrimSpace(m))] {
				return errXML()
			}
		}
		if r.AllowedOrigins == "" || r.MaxAgeInSeconds < 0 {
			return errXML()
		}
	}
	return nil
}

// apply sets the elements in holds; those left out of a request keep
// their settings.
func (p *servicePropsXML) apply(in *servicePropsXML) {
	if in.Logging != nil {
		p.Logging = in.Logging
	}
	if in.HourMetrics != nil {
		p.HourMetrics = in.HourMetrics
	}
	if in.MinuteMetrics != nil {
		p.MinuteMetrics = in.MinuteMetrics
	}
	if in.Cors != nil {
		p.Cors = in.Cors
	}
	if in.DefaultServiceVersion != nil {
		p.DefaultServiceVersion = in.DefaultServiceVersion
	}
	if in.DeleteRetentionPolicy != nil {
		p.DeleteRetentionPolicy = in.DeleteRetentionPolicy
	}
	if in.StaticWebsite != nil {
		p.StaticWebsite = in.StaticWebsite
	}
	if in.ContainerDeleteRetentionPolicy != nil {
		p.ContainerDeleteRetentionPolicy = in.ContainerDeleteRetentionPolicy
	}
}

// setServiceProps answers Set Blob Service Properties. CORS (through
// CORSRules) and the delete retention policy (soft delete) have an effect;
// logging, metrics and static website settings are validated as XML, kept
// and returned.
func (s *Service) setServiceProps(c *call) error {
	if err := s.allow(c, "w", storage.ResService, ""); err != nil {
		return err
	}
	var in servicePropsXML
	if err := readXML(c, &in); err != nil {
		return err
	}
	if err := in.check(); err != nil {
		return err
	}
	err := s.update(func(t *txn) error {
		props := defaultServiceProps()
		if _, err := getJSON(t.bucket(bktService), []byte(c.req.Account), &props); err != nil {
			return err
		}
		props.apply(&in)
		raw, err := json.Marshal(props)
		if err != nil {
			return err
		}
		return t.bucket(bktService).Put([]byte(c.req.Account), raw)
	})
	if err != nil {
		return err
	}
	s.cors.Delete(c.req.Account)
	c.w.WriteHeader(http.StatusAccepted)
	return nil
}

// accountInfo answers Get Account Information, which the SDKs call to learn
// the account kind; any authenticated caller may ask.
func (s *Service) accountInfo(c *call) error {
	if c.req.Auth.Kind == storage.Anonymous {
		if err := c.req.Allow('r', storage.ResService); err != nil {
			return err
		}
	}
	h := c.w.Header()
	h.Set("x-ms-sku-name", "Standard_LRS")
	h.Set("x-ms-account-kind", "StorageV2")
	h.Set("x-ms-is-hns-enabled", "false")
	c.w.WriteHeader(http.StatusOK)
	return nil
}

type statsXML struct {
	XMLName xml.Name `xml:"StorageServiceStats"`
	Geo     struct {
		Status   string `xml:"Status"`
		LastSync string `xml:"LastSyncTime"`
	} `xml:"GeoReplication"`
}

// serviceStats answers Get Blob Service Stats: there is no secondary, so
// replication is always live.
func (s *Service) serviceStats(c *call) error {
	if err := s.allow(c, "r", storage.ResService, ""); err != nil {
		return err
	}
	var body statsXML
	body.Geo.Status = "live"
	body.Geo.LastSync = s.now().UTC().Format(http.TimeFormat)
	return storage.WriteXML(c.w, http.StatusOK, body)
}

// CORSRules returns the CORS rules of an account's Blob service, for the
// front end's answers to preflight requests and cross-origin calls. It
// returns nil when none are set or they cannot be read. The front end asks
// on every request with an Origin, so the rules are cached until the next
// Set Blob Service Properties.
func (s *Service) CORSRules(account string) []storage.CORSRule {
	if v, ok := s.cors.Load(account); ok {
		return v.([]storage.CORSRule)
	}
	rules := s.loadCORSRules(account)
	s.cors.Store(account, rules)
	return rules
}

func (s *Service) loadCORSRules(account string) []storage.CORSRule {
	props, err := s.loadServiceProps(account)
	if err != nil || props.Cors == nil {
		return nil
	}
	split := func(v string) []string {
		var out []string
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	var rules []storage.CORSRule
	for _, r := range props.Cors.Rules {
		rules = append(rules, storage.CORSRule{
			AllowedOrigins:  split(r.AllowedOrigins),
			AllowedMethods:  split(r.AllowedMethods),
			AllowedHeaders:  split(r.AllowedHeaders),
			ExposedHeaders:  split(r.ExposedHeaders),
			MaxAgeInSeconds: r.MaxAgeInSeconds,
		})
	}
	return rules
}
