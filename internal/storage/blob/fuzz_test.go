package blob

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/weftcloud/weft/internal/storage"
)

// checkXMLRefusal fails unless err is a 4xx storage error with one of codes.
func checkXMLRefusal(t *testing.T, err error, codes ...string) {
	t.Helper()
	var e *storage.Error
	if !errors.As(err, &e) || e.Status < 400 || e.Status > 499 {
		t.Fatalf("refusal %v is not a 4xx storage error", err)
	}
	for _, c := range codes {
		if e.Code == c {
			return
		}
	}
	t.Fatalf("refusal %v, want one of %v", err, codes)
}

// putBlockListBody is a Put Block List body as the SDKs write it.
func putBlockListBody(refs []blockRef) []byte {
	var b bytes.Buffer
	b.WriteString(xml.Header + "<BlockList>")
	for _, r := range refs {
		b.WriteString("<" + r.list + ">")
		_ = xml.EscapeText(&b, []byte(r.id))
		b.WriteString("</" + r.list + ">")
	}
	b.WriteString("</BlockList>")
	return b.Bytes()
}

// FuzzParseBlockList reads any body as a Put Block List document.
// Properties: a bad body is 400 InvalidXmlDocument (or 409 past 50,000
// blocks), never a panic; and what is accepted, written back as a client
// writes it, reads as the same list in the same order.
func FuzzParseBlockList(f *testing.F) {
	f.Add(putBlockListBody([]blockRef{{"Latest", blockID(0)}, {"Committed", blockID(1)}, {"Uncommitted", blockID(2)}}))
	f.Add([]byte(`<?xml version="1.0" encoding="utf-8"?><BlockList><Latest>AAAAAA==</Latest><Latest>AQAAAA==</Latest></BlockList>`))
	f.Add([]byte("<BlockList><Latest>"))
	f.Add([]byte("<BlockList><Other>QQ==</Other></BlockList>"))
	f.Add([]byte("<BlockList/>"))
	f.Fuzz(func(t *testing.T, body []byte) {
		refs, err := parseBlockList(bytes.NewReader(body))
		if err != nil {
			checkXMLRefusal(t, err, "InvalidXmlDocument", "BlockCountExceedsLimit")
			return
		}
		if len(refs) > maxBlocks {
			t.Fatalf("%d blocks accepted", len(refs))
		}
		again, err := parseBlockList(bytes.NewReader(putBlockListBody(refs)))
		if err != nil {
			t.Fatalf("the list written back does not parse: %v\n%s", err, putBlockListBody(refs))
		}
		if !cmp.Equal(refs, again, cmp.AllowUnexported(blockRef{})) {
			t.Fatalf("the list changed on the way back: %q, then %q", refs, again)
		}
	})
}

// FuzzServiceProps reads any body as Set Blob Service Properties.
// Properties: a bad body is 400 InvalidXmlDocument, never a panic; and
// settings that are accepted, stored (as JSON) and returned by Get Blob
// Service Properties (as XML) are accepted again and mean the same.
func FuzzServiceProps(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0" encoding="utf-8"?><StorageServiceProperties><Logging><Version>1.0</Version><Delete>true</Delete><Read>false</Read><Write>true</Write><RetentionPolicy><Enabled>true</Enabled><Days>7</Days></RetentionPolicy></Logging>` +
		`<Cors><CorsRule><AllowedOrigins>http://a.example,http://b.example</AllowedOrigins><AllowedMethods>GET,PUT</AllowedMethods><MaxAgeInSeconds>60</MaxAgeInSeconds><ExposedHeaders>x-ms-meta-*</ExposedHeaders><AllowedHeaders>x-ms-meta-target*</AllowedHeaders></CorsRule></Cors>` +
		`<DefaultServiceVersion>2021-12-02</DefaultServiceVersion><DeleteRetentionPolicy><Enabled>false</Enabled></DeleteRetentionPolicy></StorageServiceProperties>`))
	f.Add([]byte(`<StorageServiceProperties><Cors><CorsRule><AllowedOrigins>*</AllowedOrigins><AllowedMethods>FETCH</AllowedMethods></CorsRule></Cors></StorageServiceProperties>`))
	f.Add([]byte(`<StorageServiceProperties><StaticWebsite><Enabled>true</Enabled><IndexDocument>index.html</IndexDocument></StaticWebsite></StorageServiceProperties>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var in servicePropsXML
		err := decodeXML(body, &in)
		if err == nil {
			err = in.check()
		}
		if err != nil {
			checkXMLRefusal(t, err, "InvalidXmlDocument")
			return
		}
		// Stored and loaded as setServiceProps and loadServiceProps do.
		props := defaultServiceProps()
		props.apply(&in)
		stored, err := json.Marshal(props)
		if err != nil {
			t.Fatalf("accepted settings do not store: %v", err)
		}
		loaded := defaultServiceProps()
		if err := json.Unmarshal(stored, &loaded); err != nil {
			t.Fatalf("stored settings do not load: %v", err)
		}
		out, err := xml.Marshal(loaded)
		if err != nil {
			t.Fatalf("Get Blob Service Properties cannot write the settings: %v", err)
		}
		again := defaultServiceProps()
		if err := decodeXML(out, &again); err != nil {
			t.Fatalf("what Get returns is refused by Set: %v\n%s", err, out)
		}
		if err := again.check(); err != nil {
			t.Fatalf("what Get returns is refused by Set: %v\n%s", err, out)
		}
		if diff := cmp.Diff(loaded, again, cmpopts.IgnoreFields(servicePropsXML{}, "XMLName")); diff != "" {
			t.Fatalf("settings changed on the way back (-stored +returned):\n%s", diff)
		}
	})
}

// FuzzTags reads any body as Set Blob Tags. Properties: a bad body is 400
// (InvalidXmlDocument or InvalidTag), never a panic; and accepted tags, as
// Get Blob Tags writes them, read back the same.
func FuzzTags(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0" encoding="utf-8"?><Tags><TagSet><Tag><Key>env</Key><Value>dev</Value></Tag><Tag><Key>team</Key><Value>storage</Value></Tag></TagSet></Tags>`))
	f.Add([]byte(`<Tags><TagSet></TagSet></Tags>`))
	f.Add([]byte(`<Tags><TagSet><Tag><Key></Key><Value>x</Value></Tag></TagSet></Tags>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var in tagsXML
		err := decodeXML(body, &in)
		var tags map[string]string
		if err == nil {
			tags, err = in.tags()
		}
		if err != nil {
			checkXMLRefusal(t, err, "InvalidXmlDocument", "InvalidTag")
			return
		}
		out, err := xml.Marshal(tagsXML{Tags: tagList(tags)})
		if err != nil {
			t.Fatalf("Get Blob Tags cannot write the tags: %v", err)
		}
		var back tagsXML
		if err := decodeXML(out, &back); err != nil {
			t.Fatalf("the tags written back do not parse: %v\n%s", err, out)
		}
		again, err := back.tags()
		if err != nil {
			t.Fatalf("the tags written back are refused: %v\n%s", err, out)
		}
		if !cmp.Equal(tags, again) {
			t.Fatalf("tags changed on the way back: %q, then %q", tags, again)
		}
	})
}
