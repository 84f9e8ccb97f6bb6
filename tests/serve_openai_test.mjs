// `dsrt serve` through the official openai npm client: the models list, a chat
// completion, a streaming chat completion (with usage), completions from text and
// from token ids, a stop string, and the client's errors for a bad key and an
// unsupported field. A demo-v3 engine (real DeepSeek-V3 tokenizer and chat template,
// random weights) is built first; its text is gibberish, so the checks compare the
// server's answers with each other.
//
// usage: node serve_openai_test.mjs --dsrt BUILD/tools/dsrt/dsrt

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";

const API_KEY = "test-key";

function dsrtPath() {
  const at = process.argv.indexOf("--dsrt");
  if (at < 0 || !process.argv[at + 1]) throw new Error("usage: serve_openai_test.mjs --dsrt PATH");
  return process.argv[at + 1];
}

function runDsrt(dsrt, args) {
  const proc = spawnSync(dsrt, args, { encoding: "utf8" });
  if (proc.status !== 0) throw new Error(`dsrt ${args.join(" ")}: ${proc.stderr}`);
  return proc.stdout;
}

// Starts `dsrt serve` on a free port; resolves with the process and its URL.
function startServer(dsrt, engine) {
  const server = spawn(dsrt, ["serve", engine, "--port", "0", "--max-batch", "4", "--kv-cache-bytes", "64M",
                              "--api-key", API_KEY, "--threads", "2"], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`no listening line in 60 s: ${out}`)), 60000);
    server.stdout.on("data", (data) => {
      out += data.toString();
      const match = out.match(/listening on (http:\/\/\S+)/);
      if (match) {
        clearTimeout(timer);
        resolve({ server, url: match[1] });
      }
    });
    server.on("exit", (code) => reject(new Error(`dsrt serve exited with ${code}: ${out}`)));
  });
}

let passed = 0, failed = 0;
function expect(name, ok, detail = "") {
  if (ok) {
    passed++;
    console.log(`ok   ${name}`);
  } else {
    failed++;
    console.log(`FAIL ${name}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }
}

async function expectError(name, promise, status, param) {
  try {
    await promise;
    expect(name, false, "no error");
  } catch (e) {
    expect(name, e.status === status && (param === undefined || e.param === param),
           `status ${e.status}, param ${e.param}, message ${e.message}`);
  }
}

async function checks(client, model) {
  const models = await client.models.list();
  expect("models.list names the one model", models.data.length === 1 && models.data[0].id === model, models.data);

  const messages = [{ role: "user", content: "Write one sentence about the sea." }];
  const chat = await client.chat.completions.create({ model, messages, max_tokens: 10, temperature: 0 });
  const answer = chat.choices[0].message.content;
  expect("chat completion has an assistant message", chat.object === "chat.completion" &&
         chat.choices[0].message.role === "assistant" && answer.length > 0, chat);
  expect("chat completion ends at max_tokens", chat.choices[0].finish_reason === "length", chat.choices[0]);
  expect("chat usage counts 10 completion tokens", chat.usage.completion_tokens === 10 &&
         chat.usage.total_tokens === chat.usage.prompt_tokens + 10 && chat.usage.prompt_tokens > 5, chat.usage);

  const stream = await client.chat.completions.create({ model, messages, max_tokens: 10, temperature: 0, stream: true,
                                                        stream_options: { include_usage: true } });
  let streamed = "", finish = null, usage = null, chunks = 0, role = null;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    if (chunk.choices.length === 0) continue;
    role = role ?? chunk.choices[0].delta.role;
    streamed += chunk.choices[0].delta.content ?? "";
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  expect("streamed chat text equals the non-streamed answer", streamed === answer, `${streamed} vs ${answer}`);
  expect("stream starts with the assistant role and ends with length", role === "assistant" && finish === "length",
         { role, finish });
  expect("stream's last chunk carries usage", usage && usage.completion_tokens === 10, usage);
  expect("stream came in several chunks", chunks >= 3, chunks);

  const completion = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 6, temperature: 0 });
  expect("completion from text", completion.object === "text_completion" && completion.choices[0].text.length > 0 &&
         completion.usage.completion_tokens === 6, completion);
  const fromIds = await client.completions.create({ model, prompt: [0, 1000, 2000, 3000], max_tokens: 4, temperature: 0 });
  expect("completion from token ids counts them", fromIds.usage.prompt_tokens === 4 &&
         fromIds.usage.completion_tokens === 4, fromIds.usage);

  const text = completion.choices[0].text;
  const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 2);
  if (stop.length === 2) {
    const cut = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 6, temperature: 0, stop });
    expect("a stop string cuts the text before it", cut.choices[0].text === text.slice(0, text.indexOf(stop)) &&
           cut.choices[0].finish_reason === "stop", { cut: cut.choices[0], text, stop });
  }

  await expectError("n > 1 is refused naming 'n'",
                    client.chat.completions.create({ model, messages, max_tokens: 4, n: 2 }), 400, "n");
  await expectError("an unknown model is a 404",
                    client.chat.completions.create({ model: "gpt-4", messages, max_tokens: 4 }), 404, "model");
  await expectError("max_tokens 0 is refused naming it",
                    client.completions.create({ model, prompt: "x", max_tokens: 0 }), 400, "max_tokens");
  const stranger = new OpenAI({ baseURL: client.baseURL, apiKey: "wrong-key", maxRetries: 0 });
  await expectError("a wrong API key is a 401", stranger.models.list(), 401);
}

async function main() {
  const dsrt = dsrtPath();
  const work = mkdtempSync(join(tmpdir(), "serve_openai_"));
  let server = null;
  try {
    const ckpt = join(work, "ckpt"), engine = join(work, "m.engine");
    runDsrt(dsrt, ["synth", "--preset", "demo-v3", "--output", ckpt, "--seed", "5"]);
    if (!existsSync(join(ckpt, "tokenizer.json"))) throw new Error("synth wrote no tokenizer: run scripts/setup");
    runDsrt(dsrt, ["build", "--checkpoint", ckpt, "--output", engine, "--dtype", "bf16"]);
    const started = await startServer(dsrt, engine);
    server = started.server;
    const client = new OpenAI({ baseURL: `${started.url}/v1`, apiKey: API_KEY, maxRetries: 0, timeout: 120000 });
    await checks(client, "m");
  } finally {
    if (server) {
      const exited = new Promise((resolve) => server.on("exit", (code, signal) => resolve({ code, signal })));
      server.kill("SIGTERM");
      const { code } = await exited;
      expect("SIGTERM shuts the server down cleanly", code === 0, `exit code ${code}`);
    }
    rmSync(work, { recursive: true, force: true });
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => {
  console.log(`FAIL ${e.stack}`);
  process.exit(1);
});
