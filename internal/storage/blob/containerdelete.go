package blob

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/weftcloud/weft/internal/storage"
)

// Container soft delete and Restore Container. When the account's
// ContainerDeleteRetentionPolicy is enabled (serviceprops.go), Delete
// Container keeps the container and all that was in it, under a version
// of its own: its record goes to bktDelContainers and its blobs,
// snapshots, soft-deleted blobs and uncommitted blocks to bktTrash,
// keeping the references to their files, so nothing they need is
// collected. List Containers shows it with include=deleted; Restore
// Container brings it back, under its name or another; after the
// policy's days the hourly sweep releases it. A new container may take
// the name meanwhile; each deletion is a version of its own.
// https://learn.microsoft.com/rest/api/storageservices/restore-container

var (
	// account\0container\0version -> deletedContainerRec
	bktDelContainers = []byte("delcontainers")
	// account\0container\0version\0 + kind + the rest of the key the entry
	// had in its bucket after the container's prefix -> the value it had.
	bktTrash = []byte("trash")
)

// The kinds of entries in bktTrash: where they came from.
const (
	trashBlob    = 'b' // bktBlobs
	trashBlock   = 'k' // bktBlocks
	trashDeleted = 'd' // bktDeleted
)

// trashFrom maps each kind to its bucket.
var trashFrom = map[byte][]byte{trashBlob: bktBlobs, trashBlock: bktBlocks, trashDeleted: bktDeleted}

type deletedContainerRec struct {
	Container containerRec `json:"c"`
	Version   string       `json:"v"`
	Deleted   time.Time    `json:"at"`
	Purge     time.Time    `json:"purge"`
}

func deletedContainerKey(account, container, version string) []byte {
	return []byte(account + "\x00" + container + "\x00" + version)
}

// softDeleteContainer moves the container rec and its contents to the
// trash for days, under a new version.
func (t *txn) softDeleteContainer(account string, rec *containerRec, now time.Time, days int) error {
	version := fmt.Sprintf("%016X", now.UnixNano())
	for t.bucket(bktDelContainers).Get(deletedContainerKey(account, rec.Name, version)) != nil {
		now = now.Add(1)
		version = fmt.Sprintf("%016X", now.UnixNano())
	}
	dk := deletedContainerKey(account, rec.Name, version)
	prefix := blobsPrefix(account, rec.Name)
	for _, kind := range []byte{trashBlob, trashBlock, trashDeleted} {
		src := t.bucket(trashFrom[kind])
		var keys, vals [][]byte
		c := src.Cursor()
		for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
			keys, vals = append(keys, bytes.Clone(k)), append(vals, bytes.Clone(v))
		}
		for i, k := range keys {
			if kind == trashBlob {
				var b blobRec
				if err := json.Unmarshal(vals[i], &b); err != nil {
					return fmt.Errorf("blob: decoding blob: %w", err)
				}
				// A container goes with its blobs, so not while one is
				// immutable.
				if err := checkMutable(&b, now); err != nil {
					return err
				}
				if err := t.deleteBlob(k); err != nil {
					return err
				}
			} else if err := src.Delete(k); err != nil {
				return err
			}
			tk := append(append(bytes.Clone(dk), 0, kind), k[len(prefix):]...)
			if err := t.bucket(bktTrash).Put(tk, vals[i]); err != nil {
				return err
			}
		}
	}
	del := deletedContainerRec{Container: *rec, Version: version, Deleted: now.UTC(), Purge: now.UTC().Add(time.Duration(days) * 24 * time.Hour)}
	del.Container.Lease = leaseRec{}
	if err := putJSON(t.bucket(bktDelContainers), dk, &del); err != nil {
		return err
	}
	return t.bucket(bktContainers).Delete(containerKey(account, rec.Name))
}

// trashEntries calls fn for each trash entry of the deleted container at
// dk, with its kind and the rest of its original key.
func (t *txn) trashEntries(dk []byte, fn func(kind byte, rest, v []byte) error) error {
	prefix := append(bytes.Clone(dk), 0)
	var keys [][]byte
	c := t.bucket(bktTrash).Cursor()
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		if len(k) <= len(prefix) {
			continue
		}
		if err := fn(k[len(prefix)], bytes.Clone(k[len(prefix)+1:]), bytes.Clone(v)); err != nil {
			return err
		}
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := t.bucket(bktTrash).Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// purgeDeletedContainer releases a deleted container and all it held.
func (t *txn) purgeDeletedContainer(dk []byte) error {
	err := t.trashEntries(dk, func(kind byte, _, v []byte) error {
		if kind == trashBlock {
			var b blockRec
			if err := json.Unmarshal(v, &b); err != nil {
				return fmt.Errorf("blob: decoding block: %w", err)
			}
			return t.unref(b.File, b.Inline)
		}
		var rec blobRec
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("blob: decoding blob: %w", err)
		}
		return t.releaseBlob(&rec)
	})
	if err != nil {
		return err
	}
	return t.bucket(bktDelContainers).Delete(dk)
}

// sweepDeletedContainers releases the deleted containers whose retention
// has ended.
func (s *Service) sweepDeletedContainers(now time.Time) error {
	return s.update(func(t *txn) error {
		var due [][]byte
		err := t.bucket(bktDelContainers).ForEach(func(k, v []byte) error {
			var rec deletedContainerRec
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("blob: decoding deleted container: %w", err)
			}
			if !rec.Purge.After(now) {
				due = append(due, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range due {
			if err := t.purgeDeletedContainer(k); err != nil {
				return err
			}
		}
		if len(due) > 0 {
			s.log.Info("blob: released deleted containers past their retention", "count", len(due))
		}
		return nil
	})
}

// restoreContainer answers Restore Container: the deleted container that
// x-ms-deleted-container-name and -version name comes back, with all it
// held, as the container the address names (201). Both headers are
// required (400 MissingRequiredHeader); a container already there is 409
// ContainerAlreadyExists; a deleted container not kept (never deleted,
// or past its retention) is 404 ContainerNotFound. The reference takes
// Shared Key, an account SAS (here with w on containers) or a role for
// it; a service SAS, made for one container, is 403 AuthorizationFailure.
func (s *Service) restoreContainer(c *call) error {
	if c.req.Auth.Kind == storage.ServiceSAS {
		return storage.Errorf(http.StatusForbidden, "AuthorizationFailure", "This request is not authorized to perform this operation.")
	}
	if err := s.allow(c, "w", storage.ResContainer, ""); err != nil {
		return err
	}
	name, version := c.header("x-ms-deleted-container-name"), c.header("x-ms-deleted-container-version")
	if name == "" {
		return errMissingHeader("x-ms-deleted-container-name")
	}
	if version == "" {
		return errMissingHeader("x-ms-deleted-container-version")
	}
	now := s.now().UTC()
	err := s.update(func(t *txn) error {
		dk := deletedContainerKey(c.req.Account, name, version)
		var del deletedContainerRec
		ok, err := getJSON(t.bucket(bktDelContainers), dk, &del)
		if err != nil {
			return err
		}
		if !ok || !del.Purge.After(now) {
			return errContainerNotFound()
		}
		if t.bucket(bktContainers).Get(containerKey(c.req.Account, c.container)) != nil {
			return storage.Errorf(http.StatusConflict, "ContainerAlreadyExists", "The specified container already exists.")
		}
		prefix := blobsPrefix(c.req.Account, c.container)
		err = t.trashEntries(dk, func(kind byte, rest, v []byte) error {
			key := append(bytes.Clone(prefix), rest...)
			if kind != trashBlob {
				return t.bucket(trashFrom[kind]).Put(key, v)
			}
			var rec blobRec
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("blob: decoding blob: %w", err)
			}
			return t.putBlob(key, &rec)
		})
		if err != nil {
			return err
		}
		rec := del.Container
		rec.Name = c.container
		if err := t.bucket(bktDelContainers).Delete(dk); err != nil {
			return err
		}
		return putJSON(t.bucket(bktContainers), containerKey(c.req.Account, c.container), &rec)
	})
	if err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusCreated)
	return nil
}
