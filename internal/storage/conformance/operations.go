// Package conformance checks Weft's storage services against Azure's Storage
// REST API reference (learn.microsoft.com/rest/api/storageservices), not
// against any emulator: for each operation, its success answer (status,
// headers, body shape) and the error codes the reference documents for it,
// driven through the official Azure SDKs for Go where they expose the
// operation and through signed raw HTTP where they do not; what the Go SDK
// lacks is driven through the JavaScript SDK too, where node and
// @azure/storage-blob are installed (TestBlob_JavaScriptSDK).
//
// The tests are grouped one file per service and one test function per
// operation (TestTable_InsertEntity and so on), each naming the operation of
// Reference it covers. The package's TestMain prints how many of the
// reference's operations are covered, per service. Where Azure's documented
// behaviour and an emulator's differ, the tests follow Azure and say so.
package conformance

import "github.com/weftcloud/weft/internal/storage"

// Reference lists the operations of Azure's Storage REST API reference,
// per service, by the names the reference gives them.
var Reference = map[storage.Service][]string{
	storage.Blob: {
		// Operations on the account.
		"List Containers", "Set Blob Service Properties", "Get Blob Service Properties",
		"Preflight Blob Request", "Get Blob Service Stats", "Get Account Information",
		"Get User Delegation Key",
		// Operations on containers.
		"Create Container", "Get Container Properties", "Get Container Metadata",
		"Set Container Metadata", "Get Container ACL", "Set Container ACL", "Delete Container",
		"Lease Container", "Restore Container", "List Blobs", "Find Blobs by Tags in Container",
		// Operations on blobs of every type.
		"Put Blob", "Put Blob From URL", "Get Blob", "Get Blob Properties", "Set Blob Properties",
		"Get Blob Tags", "Set Blob Tags", "Find Blobs by Tags", "Get Blob Metadata",
		"Set Blob Metadata", "Lease Blob", "Snapshot Blob", "Copy Blob", "Copy Blob From URL",
		"Abort Copy Blob", "Delete Blob", "Undelete Blob", "Set Blob Tier", "Blob Batch",
		"Set Blob Immutability Policy", "Delete Blob Immutability Policy", "Set Blob Legal Hold",
		"Set Blob Expiry",
		// Block blobs.
		"Put Block", "Put Block From URL", "Put Block List", "Get Block List", "Query Blob Contents",
		// Page blobs.
		"Put Page", "Put Page From URL", "Get Page Ranges", "Incremental Copy Blob",
		// Append blobs.
		"Append Block", "Append Block From URL", "Append Blob Seal",
	},
	storage.Queue: {
		"Set Queue Service Properties", "Get Queue Service Properties", "Preflight Queue Request",
		"Get Queue Service Stats", "List Queues", "Create Queue", "Delete Queue",
		"Get Queue Metadata", "Set Queue Metadata", "Get Queue ACL", "Set Queue ACL",
		"Put Message", "Get Messages", "Peek Messages", "Delete Message", "Clear Messages",
		"Update Message",
	},
	storage.Table: {
		"Set Table Service Properties", "Get Table Service Properties", "Preflight Table Request",
		"Get Table Service Stats", "Query Tables", "Create Table", "Delete Table",
		"Get Table ACL", "Set Table ACL", "Query Entities", "Insert Entity",
		"Insert Or Merge Entity", "Insert Or Replace Entity", "Update Entity", "Merge Entity",
		"Delete Entity", "Entity Group Transaction",
	},
}
