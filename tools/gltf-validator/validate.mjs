// Validates GLB files with the Khronos glTF-Validator for meshforge's test suite.
//
//   node validate.mjs FILE.glb [FILE2.glb ...]
//
// Prints one JSON object per file, one per line, in argument order:
//   {"file", "errors", "warnings", "infos", "hints", "messages": [{"code", "message", "pointer"}, ...]}
// where messages holds the first 20 errors, then warnings. Exits 0 when every file has 0 errors, 1 when
// any has an error, 2 on a usage error. One line per file keeps the output trivial to parse from Python.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { validateBytes } from 'gltf-validator';

const MAX_MESSAGES = 20;
// The validator's numeric severities; infos and hints are counted but not listed, as they are advice.
const ERROR = 0;
const WARNING = 1;

// Our GLBs are self-contained: a reference to any outside file is a defect, so it must fail loudly
// rather than be read from whatever happens to sit next to the asset.
const rejectExternal = (uri) =>
  Promise.reject(new Error(`external resource "${uri}" refused: meshforge GLBs must be self-contained`));

// A file the validator could not even start on still gets its line, as one error, so a caller never
// has to tell "missing line" apart from "valid".
const failure = (file, code, message) => ({
  file,
  errors: 1,
  warnings: 0,
  infos: 0,
  hints: 0,
  messages: [{ code, message, pointer: '' }],
});

async function validate(file) {
  let bytes;
  try {
    bytes = await readFile(file);
  } catch (error) {
    return failure(file, 'IO_ERROR', String(error.message ?? error));
  }
  let report;
  try {
    report = await validateBytes(new Uint8Array(bytes), {
      uri: path.basename(file),
      format: 'glb', // these are GLB assets: a JSON .gltf passed here by mistake must not pass as valid
      maxIssues: 0, // unlimited, so the counts are exact and not cut off at the validator's default
      writeTimestamp: false,
      externalResourceFunction: rejectExternal,
    });
  } catch (error) {
    return failure(file, 'VALIDATOR_REJECTED', String(error?.message ?? error));
  }
  const issues = report.issues;
  const messages = issues.messages
    .filter((issue) => issue.severity === ERROR || issue.severity === WARNING)
    .sort((a, b) => a.severity - b.severity) // stable: errors first, each group in the validator's order
    .slice(0, MAX_MESSAGES)
    .map(({ code, message, pointer }) => ({ code, message, pointer: pointer ?? '' }));
  return {
    file,
    errors: issues.numErrors,
    warnings: issues.numWarnings,
    infos: issues.numInfos,
    hints: issues.numHints,
    messages,
  };
}

const files = process.argv.slice(2);
if (files.length === 0) {
  process.stderr.write('usage: node validate.mjs FILE.glb [FILE2.glb ...]\n');
  process.exit(2);
}

let failed = false;
for (const file of files) {
  const result = await validate(file);
  failed ||= result.errors > 0;
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
process.exitCode = failed ? 1 : 0;
