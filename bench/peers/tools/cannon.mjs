// One autocannon load run for bench/peers/run.py, with a warm-up in the same run:
//
//   node cannon.mjs spec.json
//
// spec: { url, headers, body, expectedFile, connections, seconds, minWarmSeconds,
//         maxWarmSeconds, timeoutSeconds }
//
// The load starts at once and never pauses. The measured window opens when every
// connection has had a response and minWarmSeconds have passed (or at maxWarmSeconds),
// so a slow query's first, synchronized round of responses falls outside it. Prints
// "start" when the window opens and "stop" when it closes (the caller reads the
// servers' CPU time at those moments), then one JSON line with what completed inside
// it. A response counts as ok only when its body is byte for byte the expected one:
// a GraphQL error inside a 200 is a bad response, like a non-2xx.
import autocannon from "autocannon";
import { readFileSync } from "node:fs";

const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));
const expected = readFileSync(spec.expectedFile, "utf8");
// autocannon decodes each chunk of a body on its own, so a multi-byte character split
// between two chunks arrives as replacement characters: such a body is compared
// without its non-ASCII characters (a GraphQL error changes the ASCII text too).
const nonAscii = /[^\x00-\x7f]/g;
const expectedAscii = expected.replace(nonAscii, "");
const matches = (body) => body === expected || body.replace(nonAscii, "") === expectedAscii;

let phase = "warm";
let openedAt = 0;
const answered = new Set();
const started = performance.now();
const tally = {
  responses: 0,
  non2xx: 0,
  mismatches: 0,
  errors: 0,
  timeouts: 0,
  latencies: [],
  sample: null,
};

const instance = autocannon(
  {
    url: spec.url,
    method: "POST",
    headers: spec.headers,
    body: spec.body,
    connections: spec.connections,
    duration: spec.maxWarmSeconds + spec.seconds + spec.timeoutSeconds + 10,
    timeout: spec.timeoutSeconds,
    verifyBody: (body) => {
      if (matches(body)) return true;
      if (phase === "measure" && tally.sample === null) tally.sample = body.slice(0, 300);
      return false;
    },
  },
  () => {},
);

function open() {
  if (phase !== "warm") return;
  phase = "measure";
  openedAt = performance.now();
  process.stdout.write("start\n");
  setTimeout(close, spec.seconds * 1000);
}

function close() {
  phase = "done";
  const seconds = (performance.now() - openedAt) / 1000;
  process.stdout.write("stop\n");
  instance.stop();
  const sorted = tally.latencies.sort((a, b) => a - b);
  const at = (q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] : null);
  const result = {
    seconds,
    warmSeconds: (openedAt - started) / 1000,
    warmComplete: answered.size >= spec.connections,
    responses: tally.responses,
    ok: tally.responses - tally.mismatches,
    non2xx: tally.non2xx,
    mismatches: tally.mismatches,
    errors: tally.errors,
    timeouts: tally.timeouts,
    p50: at(0.5),
    p99: at(0.99),
    sample: tally.sample,
  };
  process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(0));
}

function maybeOpen() {
  const warm = (performance.now() - started) / 1000;
  if (answered.size >= spec.connections && warm >= spec.minWarmSeconds) open();
}

setTimeout(maybeOpen, spec.minWarmSeconds * 1000);
setTimeout(open, spec.maxWarmSeconds * 1000);

instance.on("response", (client, statusCode, _bytes, milliseconds) => {
  if (phase === "warm") {
    answered.add(client);
    // After this tick: its own mismatch event, if any, still belongs to the warm-up.
    setImmediate(maybeOpen);
    return;
  }
  if (phase !== "measure") return;
  tally.responses += 1;
  if (statusCode < 200 || statusCode >= 300) tally.non2xx += 1;
  tally.latencies.push(milliseconds);
});
// Emitted right after the response it belongs to, in the same tick.
instance.on("reqMismatch", () => {
  if (phase === "measure") tally.mismatches += 1;
});
instance.on("reqError", (error) => {
  if (phase !== "measure") return;
  tally.errors += 1;
  if (String(error?.message).includes("timed out")) tally.timeouts += 1;
});
