// Drives Weft's Blob service through the official JavaScript SDK
// (@azure/storage-blob) for what the Go SDK does not expose: Query Blob
// Contents (its Avro answer read by the SDK's own reader), and List
// Containers with deleted containers and Restore Container. Run by
// TestBlob_JavaScriptSDK; exits non-zero, saying why, on any difference.
const assert = require("node:assert/strict");
const { BlobServiceClient, StorageSharedKeyCredential } = require("@azure/storage-blob");

async function text(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return Buffer.concat(chunks).toString();
}

async function main() {
  const [endpoint, account, key] = process.argv.slice(2);
  const svc = new BlobServiceClient(endpoint, new StorageSharedKeyCredential(account, key), { retryOptions: { maxTries: 1 } });
  const box = svc.getContainerClient("box");

  const errors = [], progress = [];
  const resp = await box.getBlockBlobClient("books.csv").query("SELECT Title, Year FROM BlobStorage WHERE Year > 1960", {
    inputTextConfiguration: { kind: "csv", recordSeparator: "\n", fieldQuote: "\"", hasHeaders: true },
    outputTextConfiguration: { kind: "json", recordSeparator: "\n" },
    onError: (e) => errors.push(e), onProgress: (p) => progress.push(p.loadedBytes),
  });
  assert.equal(resp.contentType, "avro/binary");
  assert.equal(await text(resp.readableStreamBody),
    '{"Title":"Dune","Year":"1965"}\n{"Title":"Neuromancer, the novel","Year":"1984"}\n{"Title":"Hyperion","Year":"1989"}\n');
  assert.deepEqual(errors, []);
  assert.equal(progress.at(-1), Number(process.argv[5]), "the last progress is the blob's size");

  // A record without the column: left out, reported to onError.
  const ragged = [];
  const r2 = await box.getBlockBlobClient("ragged.csv").query("SELECT _1 FROM BlobStorage WHERE _2 > 0", { onError: (e) => ragged.push(e) });
  assert.equal(await text(r2.readableStreamBody), "a\nc\n");
  assert.deepEqual(ragged.map((e) => [e.name, e.isFatal, e.position]), [["InvalidColumnOrdinal", false, 4]]);

  // A deleted container is listed with its version and comes back.
  const deleted = [];
  for await (const c of svc.listContainers({ includeDeleted: true })) {
    if (c.deleted) deleted.push(c);
  }
  assert.deepEqual(deleted.map((c) => [c.name, c.properties.remainingRetentionDays]), [["gone", 7]]);
  const { containerClient } = await svc.undeleteContainer("gone", deleted[0].version);
  assert.equal(await containerClient.exists(), true);
}

main().catch((e) => {
  console.error(e.statusCode ? `${e.statusCode} ${e.code}: ${e.message}` : e.stack || String(e));
  process.exit(1);
});
