// Runs every exported test case in ONNX Runtime and compares with nepenthe's own output.
//
// usage: node tests/onnx_run.js CASES_DIR [NODE_MODULES]
//   CASES_DIR holds one directory per model (written by build/tests/onnx_fixture):
//   model.onnx, input.bin (float32 [N, ...]), expected.bin (float32 [N, classes]), meta.json.
//   NODE_MODULES is where onnxruntime-node is installed (default build/onnx/node_modules).
// Prints "ok - ..." / "not ok - ..." per model with the largest |ORT - nepenthe|; a model
// passes when that is at most 1e-4 and every row's argmax agrees. Exit status 1 if any
// failed.
'use strict';
const fs = require('fs');
const path = require('path');

const TOL = 1e-4;

function readFloats(file) {
  const buf = fs.readFileSync(file);
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

function argmax(a, off, n) {
  let best = off;
  for (let i = off + 1; i < off + n; i++) if (a[i] > a[best]) best = i;
  return best - off;
}

// [maxDiff, rows whose argmax differs] between got and want, both [rows, cols].
function compare(got, want, rows, cols) {
  let maxDiff = 0;
  let argmaxMismatch = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const d = Math.abs(got[r * cols + c] - want[r * cols + c]);
      if (!(d <= maxDiff)) maxDiff = d; // NaN sticks
    }
    if (argmax(got, r * cols, cols) !== argmax(want, r * cols, cols)) argmaxMismatch++;
  }
  return [maxDiff, argmaxMismatch];
}

async function runCase(ort, dir) {
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'));
  const input = readFloats(path.join(dir, 'input.bin'));
  const want = readFloats(path.join(dir, 'expected.bin'));
  const session = await ort.InferenceSession.create(path.join(dir, 'model.onnx'),
                                                    {intraOpNumThreads: 2, interOpNumThreads: 1});
  const feeds = {input: new ort.Tensor('float32', input, meta.input)};
  const got = (await session.run(feeds)).logits;
  if (got.dims.join(',') !== meta.output.join(','))
    return `output dims [${got.dims}], want [${meta.output}]`;
  const rows = meta.output[0];
  const cols = want.length / rows;
  const [maxDiff, mismatch] = compare(got.data, want, rows, cols);
  const summary = `max |ORT - nepenthe| = ${maxDiff.toExponential(2)}, argmax differs on ${mismatch}/${rows} rows`;
  return maxDiff <= TOL && mismatch === 0 ? {ok: summary} : summary;
}

async function main() {
  const casesDir = process.argv[2];
  const modules = path.resolve(process.argv[3] || 'build/onnx/node_modules');
  if (!casesDir) {
    console.error('usage: node tests/onnx_run.js CASES_DIR [NODE_MODULES]');
    return 2;
  }
  let ort;
  try {
    ort = require(path.join(modules, 'onnxruntime-node'));
  } catch (e) {
    console.log(`not ok - onnxruntime-node from ${modules}: ${e.message.split('\n')[0]} (make build/onnx/.stamp)`);
    return 1;
  }
  const cases = fs.readdirSync(casesDir).filter((d) => fs.existsSync(path.join(casesDir, d, 'model.onnx'))).sort();
  if (cases.length === 0) {
    console.log(`not ok - no test cases in ${casesDir}`);
    return 1;
  }
  let failed = 0;
  for (const name of cases) {
    let r;
    try {
      r = await runCase(ort, path.join(casesDir, name));
    } catch (e) {
      r = `ONNX Runtime: ${String(e.message || e).split('\n')[0]}`;
    }
    if (r.ok) {
      console.log(`ok - onnxruntime matches nepenthe: ${name} (${r.ok})`);
    } else {
      failed++;
      console.log(`not ok - onnxruntime matches nepenthe: ${name}\n  # ${r}`);
    }
  }
  return failed ? 1 : 0;
}

main().then((rc) => process.exit(rc), (e) => {
  console.log(`not ok - onnx_run.js: ${e.stack || e}`);
  process.exit(1);
});
