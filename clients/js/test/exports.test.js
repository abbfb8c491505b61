// hubbub.d.ts and hubbub.js describe the same module: every declared value export and
// every declared method of the two main classes exists at run time, and vice versa for
// the exports. (`tsc -p .` separately checks that the declarations are usable.)
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import * as hubbub from "../hubbub.js";

const declarations = readFileSync(new URL("../hubbub.d.ts", import.meta.url), "utf8");

/** The body of `export class Name ... { ... }` in the declarations. */
function classBody(name) {
  const start = declarations.indexOf(`export class ${name} `);
  assert.ok(start >= 0, `hubbub.d.ts declares ${name}`);
  return declarations.slice(declarations.indexOf("{", start) + 1, declarations.indexOf("\n}", start));
}

test("value exports match the declarations", () => {
  const declared = [...declarations.matchAll(/^export (?:const|function|class) (\w+)/gm)].map((m) => m[1]);
  assert.deepEqual(declared.sort(), Object.keys(hubbub).sort());
});

for (const name of ["HubbubClient", "LiveFeed"]) {
  test(`every declared method of ${name} exists`, () => {
    const methods = [...classBody(name).matchAll(/^ {2}(\w+)(?:<[^>]*>)?\(/gm)].map((m) => m[1]);
    assert.ok(methods.length > 3);
    for (const method of methods.filter((m) => m !== "constructor")) {
      assert.equal(typeof hubbub[name].prototype[method], "function", `${name}.${method}`);
    }
  });
}
