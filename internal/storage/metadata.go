package storage

import (
	"encoding/xml"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// Metadata is the x-ms-meta-* name/value pairs of a container, blob or
// queue. Azure keeps a name in the case it was first written in and
// compares names regardless of case. As XML (a listing with
// include=metadata) it is one element per name, sorted.
type Metadata map[string]string

const metaPrefix = "x-ms-meta-"

// MaxMetadataSize is Azure's limit on the metadata of one container, blob or
// queue: the names and values of all pairs together, in bytes (the
// x-ms-meta- prefixes are not counted).
const MaxMetadataSize = 8 << 10

// ReadMetadata collects the x-ms-meta-* headers of a request the front end
// has served, which hands services the names in the case the client sent
// them (see rawNames). A name must be a C# identifier: otherwise 400
// InvalidMetadata. Names and values over MaxMetadataSize together are 400
// MetadataTooLarge. It returns nil when there are none.
//
// Every write that sets metadata (Put Blob, Put Block List, Set Blob
// Metadata, Copy, Snapshot, Create Container, Set Container Metadata,
// Create Queue, Set Queue Metadata) reads it here, so the limit holds for all.
func ReadMetadata(h http.Header) (Metadata, error) {
	var md Metadata
	size := 0
	for k, vs := range h {
		if !isMeta(k) {
			continue
		}
		name := k[len(metaPrefix):]
		if !validMetadataName(name) {
			return nil, Errorf(http.StatusBadRequest, "InvalidMetadata", "The metadata specified is invalid. It has characters that are not permitted.")
		}
		if md == nil {
			md = Metadata{}
		}
		v := strings.Join(vs, ",")
		md[name] = v
		size += len(name) + len(v)
	}
	if size > MaxMetadataSize {
		return nil, Errorf(http.StatusBadRequest, "MetadataTooLarge", "The size of the metadata (%d bytes of names and values) exceeds the maximum of %d bytes.", size, MaxMetadataSize)
	}
	return md, nil
}

// WriteHeaders sets an x-ms-meta-NAME header per name, in the name's case:
// the map is written to directly, as Header.Set would canonicalise it.
func (md Metadata) WriteHeaders(h http.Header) {
	for k, v := range md {
		h[metaPrefix+k] = []string{v}
	}
}

// EqualMetadata reports whether a and b hold the same values under the same
// names, compared regardless of case.
func EqualMetadata(a, b Metadata) bool {
	if len(a) != len(b) {
		return false
	}
	lower := make(map[string]string, len(b))
	for k, v := range b {
		lower[strings.ToLower(k)] = v
	}
	for k, v := range a {
		if w, ok := lower[strings.ToLower(k)]; !ok || w != v {
			return false
		}
	}
	return true
}

// MarshalXML writes <Metadata><Name>value</Name>...</Metadata>.
func (md Metadata) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(md)) {
		if err := e.EncodeElement(md[k], xml.StartElement{Name: xml.Name{Local: k}}); err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}

// validMetadataName reports whether n is a C# identifier (ASCII).
func validMetadataName(n string) bool {
	if n == "" {
		return false
	}
	for i, c := range n {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
