package api

// The controller's REST API, under /v1 (JSON unless said otherwise):
//
//	POST   /v1/packages                         body: tar.gz bytes -> Package (content-addressed; idempotent)
//	GET    /v1/packages/{digest}                -> bytes
//	PUT    /v1/services/{name}                  ServiceSpec -> Service (create, or upgrade when changed)
//	GET    /v1/services                         -> []Service
//	GET    /v1/services/{name}                  -> Service
//	DELETE /v1/services/{name}                  -> Service (status deleting; gone when its instances stopped)
//	POST   /v1/services/{name}/scale            ScaleRequest -> Service
//	POST   /v1/services/{name}/rollback         -> Service
//	POST   /v1/services/{name}/plan             ServiceSpec -> Plan (what PUT would change; changes nothing)
//	GET    /v1/instances[?service=NAME]         -> []Instance
//	GET    /v1/instances/{id}                   -> Instance
//	GET    /v1/instances/{id}/logs?follow=1&tail=N  -> text/plain stream (proxied to the instance's node)
//	GET    /v1/nodes                            -> []Node
//	GET    /v1/nodes/{name}                     -> Node
//	POST   /v1/nodes/{name}/drain               -> Node
//	POST   /v1/nodes/{name}/undrain             -> Node
//	GET    /v1/events?since=SEQ&follow=1        -> []Event, or with follow one Event per line (NDJSON) as they happen
//	GET    /v1/status                           -> Status
//	POST   /v1/storage/accounts                 CreateStorageAccount -> StorageAccount
//	GET    /v1/storage/accounts                 -> []StorageAccount
//	GET    /v1/storage/accounts/{name}/keys     -> StorageAccountKeys
//	POST   /v1/storage/accounts/{name}/keys/{key}/regenerate -> StorageAccountKeys (key: key1 | key2)
//	DELETE /v1/storage/accounts/{name}          -> 204
//	GET    /v1/storage/config                   -> StoragePlacement (the storage primary, in-sync set and members)
//	POST   /v1/storage/members                  StorageMember -> {} (servers only: one registers its storage)
//	POST   /v1/storage/insync                   StorageInSyncChange -> {} (servers only; 409 at a stale epoch)
//	HEAD   /v1/imagefiles/{digest}              -> 200 with Content-Length, or 404
//	PUT    /v1/imagefiles/{digest}?size=N       body: the file's bytes (checked against digest) -> 201
//	GET    /v1/imagefiles/{digest}              -> bytes (Range allowed)
//	POST   /v1/images                           Image (files uploaded first) -> Image
//	GET    /v1/images                           -> []Image
//	GET    /v1/images/{name}                    -> Image
//	DELETE /v1/images/{name}                    -> 204 (409 while a service uses it)
//
// plus the node protocol in node.go. Blocking queries answer with the
// X-Weft-Index header.

// HeaderIndex carries the store index of a blocking query's answer.
const HeaderIndex = "X-Weft-Index"

// ScaleRequest sets a role's instance count.
type ScaleRequest struct {
	Role      string `json:"role"`
	Instances int    `json:"instances"`
}

// Status describes the controller answering.
type Status struct {
	Version string `json:"version"`
	Leader  bool   `json:"leader"`
	Name    string `json:"name"`
	Index   uint64 `json:"index"`
}

// LogChunk limits: agents keep at most this much of each instance's output.
const MaxLogBytes = 8 << 20

// ExecRequest runs a command inside an instance (container and vm
// runtimes): POST /v1/instances/{id}/exec and POST /v1/vms/{name}/exec.
type ExecRequest struct {
	Command []string `json:"command"`
}

// ExecResult is what the command printed (each stream capped at
// MaxExecOutput bytes) and its exit code.
type ExecResult struct {
	ExitCode int    `json:"exitCode"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}

// MaxExecOutput caps each output stream of an exec.
const MaxExecOutput = 1 << 20
