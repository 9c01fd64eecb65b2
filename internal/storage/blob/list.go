package blob

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/boltlog"
)

const maxListResults = 5000

func serviceEndpoint(c *call) string {
	host := c.r.Host
	if strings.HasPrefix(host, c.req.Account+".") {
		return "http://" + host + "/"
	}
	return "http://" + host + "/" + c.req.Account + "/"
}

func maxResults(c *call) (int, error) {
	v := c.query("maxresults")
	if v == "" {
		return maxListResults, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, errQuery("maxresults")
	}
	return min(n, maxListResults), nil
}

func includes(c *call) map[string]bool {
	out := map[string]bool{}
	for _, v := range c.q["include"] {
		for part := range strings.SplitSeq(v, ",") {
			out[strings.ToLower(strings.TrimSpace(part))] = true
		}
	}
	return out
}

type containerPropsXML struct {
	LastModified  string `xml:"Last-Modified"`
	ETag          string `xml:"Etag"`
	LeaseStatus   string `xml:"LeaseStatus"`
	LeaseState    string `xml:"LeaseState"`
	LeaseDuration string `xml:"LeaseDuration,omitempty"`
	PublicAccess  string `xml:"PublicAccess,omitempty"`
	Immutability  bool   `xml:"HasImmutabilityPolicy"`
	LegalHold     bool   `xml:"HasLegalHold"`
	DeletedTime   string `xml:"DeletedTime,omitempty"`
	RemainingDays int    `xml:"RemainingRetentionDays,omitempty"`
}

type containerXML struct {
	Name     string            `xml:"Name"`
	Deleted  bool              `xml:"Deleted,omitempty"`
	Version  string            `xml:"Version,omitempty"`
	Props    containerPropsXML `xml:"Properties"`
	Metadata storage.Metadata  `xml:"Metadata,omitempty"`
}

type containerListXML struct {
	XMLName    xml.Name `xml:"EnumerationResults"`
	Endpoint   string   `xml:"ServiceEndpoint,attr"`
	Prefix     string   `xml:"Prefix,omitempty"`
	Marker     string   `xml:"Marker,omitempty"`
	MaxResults int      `xml:"MaxResults,omitempty"`
	Containers struct {
		Items []containerXML `xml:"Container"`
	} `xml:"Containers"`
	NextMarker string `xml:"NextMarker"`
}

// listContainers answers List Containers; with include=deleted the
// deleted containers kept for restore come too (Deleted, Version,
// DeletedTime, RemainingRetentionDays), each right after the live one of
// its name. Markers are what the list sorts by: a container's name, and
// a deleted one's name, "!" (which sorts before every character a name
// may have) and version. Listing resumes at the marker itself.
func (s *Service) listContainers(c *call) error {
	if err := s.allow(c, "l", storage.ResService, ""); err != nil {
		return err
	}
	limit, err := maxResults(c)
	if err != nil {
		return err
	}
	prefix, marker := c.query("prefix"), c.query("marker")
	inc := includes(c)
	body := containerListXML{Endpoint: serviceEndpoint(c), Prefix: prefix, Marker: marker}
	if c.has("maxresults") {
		body.MaxResults = limit
	}
	now := s.now()
	base := []byte(c.req.Account + "\x00")
	start := max(prefix, marker)
	if i := strings.IndexByte(start, '!'); i >= 0 {
		start = start[:i]
	}
	err = s.view(func(tx *boltlog.Tx) error {
		live := &containerCursor{cur: tx.Bucket(bktContainers).Cursor(), base: base}
		live.seek(start)
		dead := &containerCursor{cur: tx.Bucket(bktDelContainers).Cursor(), base: base, deleted: true}
		if inc["deleted"] {
			dead.seek(start)
		}
		for {
			next := live
			if dead.ok && (!live.ok || dead.sortKey < live.sortKey) {
				next = dead
			}
			if !next.ok || !strings.HasPrefix(next.name, prefix) {
				break
			}
			if next.sortKey < marker {
				next.next()
				continue
			}
			if len(body.Containers.Items) == limit {
				body.NextMarker = next.sortKey
				break
			}
			var rec containerRec
			var del deletedContainerRec
			if next.deleted {
				if err := json.Unmarshal(next.v, &del); err != nil {
					return err
				}
				rec = del.Container
			} else if err := json.Unmarshal(next.v, &rec); err != nil {
				return err
			}
			item := containerXML{Name: rec.Name, Props: containerPropsXML{
				LastModified: rec.Modified.UTC().Format(http.TimeFormat), ETag: rec.ETag, PublicAccess: rec.Public,
			}}
			item.Props.LeaseStatus, item.Props.LeaseState, item.Props.LeaseDuration = rec.Lease.leaseXML(now)
			if next.deleted {
				item.Deleted, item.Version = true, del.Version
				item.Props.DeletedTime = del.Deleted.Format(http.TimeFormat)
				item.Props.RemainingDays = remainingDays(del.Purge, now)
			}
			if inc["metadata"] {
				item.Metadata = storage.Metadata(rec.Meta)
				if item.Metadata == nil {
					item.Metadata = storage.Metadata{}
				}
			}
			body.Containers.Items = append(body.Containers.Items, item)
			next.next()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return storage.WriteXML(c.w, http.StatusOK, body)
}

// containerCursor walks one account's live (account\0name) or deleted
// (account\0name\0version) containers in the order List Containers
// shows them.
type containerCursor struct {
	cur     *boltlog.Cursor
	base    []byte
	deleted bool

	ok            bool
	name, sortKey string
	v             []byte
}

func (c *containerCursor) seek(name string) {
	k, v := c.cur.Seek(append(bytes.Clone(c.base), name...))
	c.at(k, v)
}

func (c *containerCursor) next() { c.at(c.cur.Next()) }

func (c *containerCursor) at(k, v []byte) {
	c.ok = k != nil && hasPrefix(k, c.base)
	if !c.ok {
		return
	}
	c.name, c.sortKey, c.v = string(k[len(c.base):]), string(k[len(c.base):]), v
	if c.deleted {
		name, version, _ := strings.Cut(c.name, "\x00")
		c.name, c.sortKey = name, name+"!"+version
	}
}

type blobPropsXML struct {
	Created            string `xml:"Creation-Time"`
	LastModified       string `xml:"Last-Modified"`
	ETag               string `xml:"Etag"`
	ContentLength      int64  `xml:"Content-Length"`
	ContentType        string `xml:"Content-Type"`
	ContentEncoding    string `xml:"Content-Encoding"`
	ContentLanguage    string `xml:"Content-Language"`
	ContentMD5         string `xml:"Content-MD5"`
	ContentDisposition string `xml:"Content-Disposition"`
	CacheControl       string `xml:"Cache-Control"`
	Seq                *int64 `xml:"x-ms-blob-sequence-number,omitempty"`
	BlobType           string `xml:"BlobType"`
	AccessTier         string `xml:"AccessTier,omitempty"`
	AccessTierInferred bool   `xml:"AccessTierInferred,omitempty"`
	AccessTierChanged  string `xml:"AccessTierChangeTime,omitempty"`
	ArchiveStatus      string `xml:"ArchiveStatus,omitempty"`
	RehydratePriority  string `xml:"RehydratePriority,omitempty"`
	LeaseStatus        string `xml:"LeaseStatus"`
	LeaseState         string `xml:"LeaseState"`
	LeaseDuration      string `xml:"LeaseDuration,omitempty"`
	CopyID             string `xml:"CopyId,omitempty"`
	CopyStatus         string `xml:"CopyStatus,omitempty"`
	CopySource         string `xml:"CopySource,omitempty"`
	CopyProgress       string `xml:"CopyProgress,omitempty"`
	CopyCompletionTime string `xml:"CopyCompletionTime,omitempty"`
	ServerEncrypted    bool   `xml:"ServerEncrypted"`
	IncrementalCopy    bool   `xml:"IncrementalCopy,omitempty"`
	DestSnapshot       string `xml:"DestinationSnapshot,omitempty"`
	ImmutableUntil     string `xml:"ImmutabilityPolicyUntilDate,omitempty"`
	ImmutableMode      string `xml:"ImmutabilityPolicyMode,omitempty"`
	LegalHold          bool   `xml:"LegalHold,omitempty"`
	DeletedTime        string `xml:"DeletedTime,omitempty"`
	RemainingDays      int    `xml:"RemainingRetentionDays,omitempty"`
	TagCount           int    `xml:"TagCount,omitempty"`
	ExpiryTime         string `xml:"Expiry-Time,omitempty"`
	Sealed             *bool  `xml:"Sealed,omitempty"`
}

type blobItemXML struct {
	XMLName  xml.Name
	Name     string           `xml:"Name"`
	Deleted  bool             `xml:"Deleted,omitempty"`
	Snapshot string           `xml:"Snapshot,omitempty"`
	Props    *blobPropsXML    `xml:"Properties,omitempty"`
	Metadata storage.Metadata `xml:"Metadata,omitempty"`
	Tags     *tagsXML         `xml:"Tags,omitempty"`
}

type blobListXML struct {
	XMLName    xml.Name `xml:"EnumerationResults"`
	Endpoint   string   `xml:"ServiceEndpoint,attr"`
	Container  string   `xml:"ContainerName,attr"`
	Prefix     string   `xml:"Prefix,omitempty"`
	Marker     string   `xml:"Marker,omitempty"`
	MaxResults int      `xml:"MaxResults,omitempty"`
	Delimiter  string   `xml:"Delimiter,omitempty"`
	Blobs      struct {
		Items []blobItemXML `xml:"Blob"`
	} `xml:"Blobs"`
	NextMarker string `xml:"NextMarker"`
}

func blobItem(rec *blobRec, inc map[string]bool, now time.Time) blobItemXML {
	p := &blobPropsXML{
		Created:            rec.Created.UTC().Format(http.TimeFormat),
		LastModified:       rec.Modified.UTC().Format(http.TimeFormat),
		ETag:               rec.ETag,
		ContentLength:      rec.Size,
		ContentType:        rec.Props.ContentType,
		ContentEncoding:    rec.Props.ContentEncoding,
		ContentLanguage:    rec.Props.ContentLanguage,
		ContentDisposition: rec.Props.ContentDisposition,
		CacheControl:       rec.Props.CacheControl,
		BlobType:           rec.Type,
	}
	if rec.Props.ContentMD5 != nil {
		p.ContentMD5 = base64.StdEncoding.EncodeToString(rec.Props.ContentMD5)
	}
	switch rec.Type {
	case pageBlob:
		seq := rec.Seq
		p.Seq = &seq
	case blockBlob:
		st := rec.tierState(now)
		p.AccessTier, p.AccessTierInferred = st.tier, st.inferred
		if !st.inferred {
			p.AccessTierChanged = st.changed.UTC().Format(http.TimeFormat)
		}
		if st.pending != nil {
			p.ArchiveStatus, p.RehydratePriority = st.archiveStatus(), st.pending.Priority
		}
	case appendBlob:
		sealed := rec.Sealed
		p.Sealed = &sealed
	}
	if rec.Snapshot == "" {
		p.LeaseStatus, p.LeaseState, p.LeaseDuration = rec.Lease.leaseXML(now)
	} else {
		p.LeaseStatus, p.LeaseState = "unlocked", "available"
	}
	if cp := rec.Copy; cp != nil && inc["copy"] {
		p.CopyID, p.CopyStatus, p.CopySource, p.CopyProgress = cp.ID, cp.status(rec, now), cp.Source, cp.Progress
		p.CopyCompletionTime = cp.Completed.UTC().Format(http.TimeFormat)
		p.DestSnapshot = cp.DestSnapshot
	}
	p.IncrementalCopy = rec.Incremental != nil
	if im := rec.Immutability; im != nil && inc["immutabilitypolicy"] {
		p.ImmutableUntil, p.ImmutableMode = im.Until.UTC().Format(http.TimeFormat), strings.ToLower(im.Mode)
	}
	p.LegalHold = rec.LegalHold && inc["legalhold"]
	if !rec.Expires.IsZero() {
		p.ExpiryTime = rec.Expires.UTC().Format(http.TimeFormat)
	}
	item := blobItemXML{XMLName: xml.Name{Local: "Blob"}, Name: rec.Name, Snapshot: rec.Snapshot, Props: p}
	p.TagCount = len(rec.Tags)
	if inc["tags"] && len(rec.Tags) > 0 {
		item.Tags = &tagsXML{Tags: tagList(rec.Tags)}
	}
	if inc["metadata"] {
		item.Metadata = storage.Metadata(rec.Meta)
		if item.Metadata == nil {
			item.Metadata = storage.Metadata{}
		}
	}
	return item
}

// listMarker encodes where a listing resumes: a blob name and snapshot.
func listMarker(name, snapshot string, deleted bool) string {
	key := name + "\x00" + snapshot
	if deleted {
		// A soft-deleted blob's key: it sorts after the live one's.
		key += "\x00"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(key))
}

// listBlobs answers List Blobs. Blobs come in name order, each followed by
// its snapshots; with a delimiter, names sharing a prefix up to it collapse
// into one BlobPrefix that counts once against maxresults. Markers encode
// the next name and snapshot.
func (s *Service) listBlobs(c *call) error {
	if err := s.allow(c, "l", storage.ResContainer, "container"); err != nil {
		return err
	}
	limit, err := maxResults(c)
	if err != nil {
		return err
	}
	prefix, delim, marker := c.query("prefix"), c.query("delimiter"), c.query("marker")
	inc := includes(c)
	body := blobListXML{Endpoint: serviceEndpoint(c), Container: c.container, Prefix: prefix, Marker: marker, Delimiter: delim}
	if c.has("maxresults") {
		body.MaxResults = limit
	}
	var resume []byte
	if marker != "" {
		raw, err := base64.RawURLEncoding.DecodeString(marker)
		if err != nil {
			return storage.Errorf(http.StatusBadRequest, "OutOfRangeInput", "The marker is invalid.")
		}
		resume = raw
	}
	now := s.now()
	err = s.view(func(tx *boltlog.Tx) error {
		if tx.Bucket(bktContainers).Get(containerKey(c.req.Account, c.container)) == nil {
			return errContainerNotFound()
		}
		base := blobsPrefix(c.req.Account, c.container)
		it := newListIter(tx, base, prefix, resume, inc["uncommittedblobs"], inc["deleted"])
		lastPrefix := ""
		for {
			name, snap, raw, deleted, ok := it.next()
			if !ok {
				break
			}
			if !strings.HasPrefix(name, prefix) {
				break
			}
			if snap != "" && !inc["snapshots"] {
				continue
			}
			group := ""
			if delim != "" {
				if i := strings.Index(name[len(prefix):], delim); i >= 0 {
					group = name[:len(prefix)+i+len(delim)]
				}
			}
			if group != "" && group == lastPrefix {
				continue
			}
			if len(body.Blobs.Items) == limit {
				body.NextMarker = listMarker(name, snap, deleted)
				break
			}
			if group != "" {
				lastPrefix = group
				body.Blobs.Items = append(body.Blobs.Items, blobItemXML{XMLName: xml.Name{Local: "BlobPrefix"}, Name: group})
				it.skipPast(group)
				continue
			}
			var rec blobRec
			if raw == nil {
				// A blob with only uncommitted blocks.
				rec = blobRec{Name: name, Type: blockBlob}
			} else if err := json.Unmarshal(raw, &rec); err != nil {
				return err
			}
			if !deleted && rec.Snapshot == "" && rec.expired(time.Now()) {
				continue
			}
			item := blobItem(&rec, inc, now)
			if deleted {
				deletedProps(&item, &rec, now)
			}
			body.Blobs.Items = append(body.Blobs.Items, item)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return storage.WriteXML(c.w, http.StatusOK, body)
}

// listIter walks the blobs of a container in name then snapshot order,
// optionally merging in names that so far have only uncommitted blocks,
// and soft-deleted blobs (whose keys sort right after a live blob's of the
// same name and snapshot).
type listIter struct {
	tx     *boltlog.Tx
	base   []byte
	blobs  *boltlog.Cursor
	blocks *boltlog.Cursor
	dels   *boltlog.Cursor
	bk, bv []byte // current blob entry
	dk, dv []byte // current soft-deleted entry
	uk     []byte // current uncommitted-block entry
	lastU  string
}

func newListIter(tx *boltlog.Tx, base []byte, prefix string, resume []byte, uncommitted, deleted bool) *listIter {
	it := &listIter{tx: tx, base: base, blobs: tx.Bucket(bktBlobs).Cursor()}
	start := append(bytes.Clone(base), prefix...)
	if resume != nil && string(resume) > prefix {
		start = append(bytes.Clone(base), resume...)
	}
	it.bk, it.bv = it.blobs.Seek(start)
	if uncommitted {
		it.blocks = tx.Bucket(bktBlocks).Cursor()
		it.uk, _ = it.blocks.Seek(start)
	}
	if deleted {
		it.dels = tx.Bucket(bktDeleted).Cursor()
		it.dk, it.dv = it.dels.Seek(start)
	}
	return it
}

func (it *listIter) valid(k []byte) bool { return k != nil && hasPrefix(k, it.base) }

// split parts a key (after base) into name and the rest after the NUL.
func (it *listIter) split(k []byte) (string, string) {
	name, rest, _ := strings.Cut(string(k[len(it.base):]), "\x00")
	return name, rest
}

func (it *listIter) next() (name, snapshot string, raw []byte, deleted, ok bool) {
	// The next committed entry is the lower of the live and deleted ones.
	deleted = it.dels != nil && it.valid(it.dk) && (!it.valid(it.bk) || bytes.Compare(it.dk, it.bk) < 0)
	next := it.bk
	if deleted {
		next = it.dk
	}
	for it.blocks != nil && it.valid(it.uk) {
		uname, _ := it.split(it.uk)
		if uname == it.lastU {
			it.uk, _ = it.blocks.Next()
			continue
		}
		if it.tx.Bucket(bktBlobs).Get(append(bytes.Clone(it.base), uname+"\x00"...)) != nil {
			it.lastU = uname
			it.uk, _ = it.blocks.Next()
			continue
		}
		if it.valid(next) {
			if bname, _ := it.split(next); bname <= uname {
				break
			}
		}
		it.lastU = uname
		it.uk, _ = it.blocks.Next()
		return uname, "", nil, false, true
	}
	if !it.valid(next) {
		return "", "", nil, false, false
	}
	name, snapshot = it.split(next)
	if deleted {
		snapshot = strings.TrimSuffix(snapshot, "\x00")
		raw = it.dv
		it.dk, it.dv = it.dels.Next()
	} else {
		raw = it.bv
		it.bk, it.bv = it.blobs.Next()
	}
	return name, snapshot, raw, deleted, true
}

// skipPast moves both cursors beyond every name starting with group.
func (it *listIter) skipPast(group string) {
	after := append(append(bytes.Clone(it.base), group...), 0xff)
	it.bk, it.bv = it.blobs.Seek(after)
	if it.blocks != nil {
		it.uk, _ = it.blocks.Seek(after)
	}
	if it.dels != nil {
		it.dk, it.dv = it.dels.Seek(after)
	}
}
