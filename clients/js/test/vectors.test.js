// The JSON codec against the golden vectors in protocol/vectors/ (exact bytes).
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { test } from "node:test";
import { jsonCodec } from "../hubbub.js";

const dir = new URL("../../../protocol/vectors/", import.meta.url);
const vectors = readdirSync(dir)
  .filter((name) => name.endsWith(".json"))
  .map((name) => JSON.parse(readFileSync(new URL(name, dir), "utf8")));

test("there are vectors of every kind", () => {
  const kinds = new Set(vectors.map((v) => v.kind));
  for (const kind of ["request", "reply", "error", "event", "batch"]) assert.ok(kinds.has(kind), kind);
});

for (const vector of vectors.filter((v) => v.kind === "request")) {
  test(`encodes ${vector.name} byte for byte`, () => {
    const { id, op, args } = vector.message;
    assert.equal(jsonCodec.encodeRequest(id, op, args), vector.json);
  });
}

const expectedKind = (message) => ("ev" in message ? "event" : "error" in message ? "error" : "reply");

for (const vector of vectors.filter((v) => ["reply", "error", "event"].includes(v.kind))) {
  test(`decodes ${vector.name}`, () => {
    assert.deepEqual(jsonCodec.decode(vector.json), [{ kind: vector.kind, message: vector.message }]);
  });
}

for (const vector of vectors.filter((v) => v.kind === "batch" && !("op" in v.message[0]))) {
  test(`decodes the batch ${vector.name} in order`, () => {
    const expected = vector.message.map((message) => ({ kind: expectedKind(message), message }));
    assert.deepEqual(jsonCodec.decode(vector.json), expected);
  });
}

test("rejects a frame that is not a map or an array of maps", () => {
  assert.throws(() => jsonCodec.decode("[1]"), { code: "bad_request" });
  assert.throws(() => jsonCodec.decode("null"), { code: "bad_request" });
  assert.throws(() => jsonCodec.decode("{not json"), SyntaxError);
});
