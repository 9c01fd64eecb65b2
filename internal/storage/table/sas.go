package table

import (
	"net/http"
	"strings"

	"github.com/weftcloud/weft/internal/storage"
)

// A table service SAS names one table (tn) and may bound the keys it
// reaches: (spk, srk) to (epk, erk), both ends inclusive, compared as
// (PartitionKey, RowKey) pairs. The front end verified its signature;
// the table and key bounds are checked here, per entity.

func sasDenied() error {
	return storage.Errorf(http.StatusForbidden, "AuthorizationResourceTypeMismatch", "This request is not authorized to perform this operation using this resource type.")
}

// checkSASTable refuses a service SAS made for another table.
func checkSASTable(req *storage.Request, table string) error {
	if req.Auth.Kind != storage.ServiceSAS || req.Auth.SAS == nil {
		return nil
	}
	if tn := req.Auth.SAS.TableName; tn != "" && !strings.EqualFold(tn, table) {
		return storage.Errorf(http.StatusForbidden, "AuthorizationFailure", "This request is not authorized to perform this operation.")
	}
	return nil
}

// checkSAS refuses an entity outside the SAS's table or key range.
func checkSAS(req *storage.Request, table, pk, rk string) error {
	if err := checkSASTable(req, table); err != nil {
		return err
	}
	if !sasAllows(req, pk, rk) {
		return storage.Errorf(http.StatusForbidden, "AuthorizationFailure", "This request is not authorized to perform this operation.")
	}
	return nil
}

// sasAllows reports whether (pk, rk) lies in the SAS's key range.
func sasAllows(req *storage.Request, pk, rk string) bool {
	if req.Auth.Kind != storage.ServiceSAS || req.Auth.SAS == nil {
		return true
	}
	sas := req.Auth.SAS
	if sas.StartPK != "" {
		if pk < sas.StartPK || (pk == sas.StartPK && sas.StartRK != "" && rk < sas.StartRK) {
			return false
		}
	}
	if sas.EndPK != "" {
		if pk > sas.EndPK || (pk == sas.EndPK && sas.EndRK != "" && rk > sas.EndRK) {
			return false
		}
	}
	return true
}

// intersectSAS narrows a query's key range to the SAS's range so a
// restricted query seeks rather than filtering the whole table.
func intersectSAS(req *storage.Request, r keyRange) keyRange {
	if req.Auth.Kind != storage.ServiceSAS || req.Auth.SAS == nil {
		return r
	}
	sas := req.Auth.SAS
	if sas.StartPK != "" {
		lo := []byte(sas.StartPK + "\x00" + sas.StartRK)
		if string(lo) > string(r.lo) {
			r.lo = lo
		}
	}
	if sas.EndPK != "" {
		hi := []byte(sas.EndPK + "\x01")
		if sas.EndRK != "" {
			hi = []byte(sas.EndPK + "\x00" + sas.EndRK + "\x00")
		}
		if r.hi == nil || string(hi) < string(r.hi) {
			r.hi = hi
		}
	}
	return r
}
