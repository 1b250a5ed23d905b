// Validates Kubernetes manifests offline against the Kubernetes API schemas.
//
// Two checks per document, both from the `kubernetes-models` package, which
// is generated from the Kubernetes OpenAPI schema:
// 1. its run-time validators: types, required fields, enums, formats;
// 2. TypeScript against its interfaces: the excess-property check rejects
//    unknown or misspelt fields, which the run-time validators let through
//    and `kubectl apply` (strict field validation) refuses.
// YAML errors and warnings (duplicate keys, ...) fail too.
//
// Usage: node validate.mjs FILE.yaml...   Prints one line per document;
// exits 1 if any document fails.

import { readFileSync, writeFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import ts from "typescript";

const here = dirname(fileURLToPath(import.meta.url));
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node validate.mjs FILE.yaml...");
  process.exit(2);
}

// Documents seen, and those that failed (by "file#index").
let total = 0;
const failed = new Set();
const fail = (key, where, msg) => {
  failed.add(key);
  console.log(`FAIL ${where}: ${msg}`);
};

// Documents that parsed, for the TypeScript pass.
const typed = [];

for (const file of files) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"), { uniqueKeys: true });
  docs.forEach((doc, i) => {
    const where = `${file}#${i}`;
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length > 0) {
      total++;
      fail(where, where, problems.map((p) => p.message).join("; "));
      return;
    }
    const obj = doc.toJS();
    if (obj === null || obj === undefined) return; // comments only
    total++;
    typed.push({ where, obj });
  });
}

// The model module of an object: kubernetes-models/<apiVersion>/<kind>
// ("v1" is the core group).
async function model(obj) {
  if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") {
    throw new Error("apiVersion and kind must be strings");
  }
  const spec = `kubernetes-models/${obj.apiVersion}/${obj.kind}`;
  try {
    const mod = await import(spec);
    if (typeof mod[obj.kind] !== "function") throw new Error("no class");
    return { spec, Class: mod[obj.kind] };
  } catch {
    throw new Error(`unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`);
  }
}

// Pass 1: run-time validation.
const checked = [];
for (const d of typed) {
  try {
    const { spec, Class } = await model(d.obj);
    new Class(d.obj).validate();
    checked.push({ ...d, spec });
  } catch (e) {
    fail(d.where, `${d.where} (${d.obj?.kind} ${d.obj?.metadata?.name})`, e.message);
  }
}

// Pass 2: TypeScript, one typed constant per document. The file lives here
// so that module resolution finds node_modules.
if (checked.length > 0) {
  const src = join(here, `.check-${process.pid}.mts`);
  const lines = [];
  checked.forEach((d, i) => {
    lines.push(`import type { I${d.obj.kind} as T${i} } from ${JSON.stringify(d.spec)};`);
  });
  // The first line of each document's constant, to name the failing one.
  const starts = [];
  let line = lines.length + 1;
  checked.forEach((d, i) => {
    const text = `export const doc${i}: T${i} = ${JSON.stringify(d.obj, null, 2)};`;
    starts.push(line);
    line += text.split("\n").length;
    lines.push(text);
  });
  writeFileSync(src, lines.join("\n") + "\n");
  try {
    const program = ts.createProgram([src], {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      types: [],
    });
    const diags = ts.getPreEmitDiagnostics(program);
    const bad = new Set();
    for (const diag of diags) {
      const msg = ts.flattenDiagnosticMessageText(diag.messageText, " ");
      let idx = -1;
      if (diag.file && diag.start !== undefined) {
        const line = diag.file.getLineAndCharacterOfPosition(diag.start).line + 1;
        idx = starts.findLastIndex((s) => s <= line);
      }
      const d = checked[idx];
      const where = d ? `${d.where} (${d.obj.kind} ${d.obj.metadata?.name})` : "typescript";
      if (d) bad.add(idx);
      fail(d ? d.where : "typescript", where, msg);
    }
    checked.forEach((d, i) => {
      if (!bad.has(i)) console.log(`ok   ${d.where} ${d.obj.kind} ${d.obj.metadata?.name ?? ""}`);
    });
  } finally {
    rmSync(src, { force: true });
  }
}

console.log(`manifests: ${total - failed.size} passed, ${failed.size} failed`);
process.exit(failed.size === 0 ? 0 : 1);
