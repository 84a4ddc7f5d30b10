// The bench's load generator in Node: N simulated Plivo calls over real WebSockets.
//
// The same behaviour, options and JSON result as `python -m bench.loadgen` (read its module
// docstring for the definitions: the media cadence, Plivo's playback queue and checkpoint
// acks, the IVR caller's keys, ping probes, the measurement window), written in Node so that
// the generator holds well past every server under test (PROTOCOL.md §2, §3):
//
//     node bench/node/loadgen.mjs --url ws://127.0.0.1:PORT/ivr/stream --calls 800 \
//         --mode ivr --server-pid PID --out run.json
//
// How it stays out of the way: raw TCP sockets with frames built by hand (client frames are
// masked with the all-zero key, which RFC 6455 §5.3 permits the server no way to refuse, so
// masking costs nothing), one 1 ms pacer for every call's media, and a timer heap for acks
// and key presses. The pacer's own lateness is measured and reported (`pacer_late_ms`), so a
// generator that cannot keep the cadence shows up in the result instead of passing for a
// slow server. Times are seconds on one monotonic clock; the JSON reports milliseconds
// (`*_ms`), seconds (`*_s`) and bytes.

import { createHash, randomBytes, randomUUID } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { performance } from "node:perf_hooks";

const FRAME_S = 0.02;
const SLOTS = 20;
const FRAME_BYTES = 160;
const BYTES_PER_S = 8000;
const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };
const ZERO_MASK = Buffer.alloc(4);
const CLK_TCK = 100; // Linux USER_HZ, what /proc/<pid>/stat counts in

const now = () => performance.now() / 1000;

function parseArgs(argv) {
  const opts = {
    url: null, calls: null, mode: "ivr", serverPid: "", rampRate: 100, warmupCalls: 5,
    warmupS: 1.5, settleS: 1.0, windowS: 8.0, idleTailS: 0, finalTimeoutS: 5.0,
    pingEvery: 25, bargeFraction: 0.5, seed: 1, out: "-", callQuery: 0,
  };
  const names = {
    "--url": ["url", String], "--calls": ["calls", Number], "--mode": ["mode", String],
    "--server-pid": ["serverPid", String], "--ramp-rate": ["rampRate", Number],
    "--warmup-calls": ["warmupCalls", Number], "--warmup-s": ["warmupS", Number],
    "--settle-s": ["settleS", Number], "--window-s": ["windowS", Number],
    "--idle-tail-s": ["idleTailS", Number], "--final-timeout-s": ["finalTimeoutS", Number],
    "--ping-every": ["pingEvery", Number], "--barge-fraction": ["bargeFraction", Number],
    "--seed": ["seed", Number], "--out": ["out", String],
    // --call-query 1: each stream URL names its call (?CallUUID=…), as callflow's do
    "--call-query": ["callQuery", Number],
  };
  for (let i = 0; i < argv.length; i += 2) {
    const spec = names[argv[i]];
    if (!spec) throw new Error(`unknown option ${argv[i]}`);
    opts[spec[0]] = spec[1](argv[i + 1]);
  }
  if (!opts.url || !opts.calls) throw new Error("--url and --calls are required");
  if (!["ivr", "bare"].includes(opts.mode)) throw new Error("--mode is ivr or bare");
  return opts;
}

// A small seeded PRNG (mulberry32), so runs with the same --seed press the same keys.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function clientFrame(opcode, payload) {
  const n = payload.length;
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(head + 4 + n);
  frame[0] = 0x80 | opcode;
  if (n < 126) {
    frame[1] = 0x80 | n;
  } else if (n < 65536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(n, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(n), 2);
  }
  frame.writeUInt32BE(0, head); // the all-zero masking key
  payload.copy(frame, head + 4);
  return frame;
}

// A masked text frame straight from an ASCII string (the media path: no intermediate Buffer).
function textFrame(text) {
  const n = text.length; // ASCII: one byte a character
  const head = n < 126 ? 2 : 4;
  const frame = Buffer.allocUnsafe(head + 4 + n);
  frame[0] = 0x80 | OP.TEXT;
  if (n < 126) {
    frame[1] = 0x80 | n;
  } else {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(n, 2);
  }
  frame.writeUInt32BE(0, head);
  frame.latin1Write(text, head + 4);
  return frame;
}

function percentiles(values) {
  if (!values.length) return { count: 0, p50: null, p90: null, p99: null, max: null };
  const s = Float64Array.from(values).sort();
  const n = s.length;
  const rank = (q) => s[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))];
  const r3 = (x) => Math.round(x * 1000) / 1000;
  return { count: n, p50: r3(rank(0.5)), p90: r3(rank(0.9)), p99: r3(rank(0.99)), max: r3(s[n - 1]) };
}

// `pids`: one pid, or several comma-separated (a supervisor and its workers): summed.
function procSample(pids) {
  const total = { cpu_s: 0, rss_bytes: 0 };
  for (const pid of String(pids).split(",").filter(Boolean)) {
    const one = procSampleOne(pid);
    total.cpu_s += one.cpu_s;
    total.rss_bytes += one.rss_bytes;
  }
  return total;
}

function procSampleOne(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpu = (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  let rss = 0;
  for (const line of readFileSync(`/proc/${pid}/status`, "latin1").split("\n")) {
    if (line.startsWith("VmRSS:")) rss = Number(line.split(/\s+/)[1]) * 1024;
  }
  return { cpu_s: cpu, rss_bytes: rss };
}

function machineBusyS() {
  const f = readFileSync("/proc/stat", "latin1").split("\n")[0].split(/\s+/).slice(1).map(Number);
  const idle = f[3] + (f[4] ?? 0);
  const steal = f[7] ?? 0;
  return (f.slice(0, 8).reduce((a, b) => a + b, 0) - idle - steal) / CLK_TCK;
}

function selfCpuS() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function selfSysS() {
  return process.cpuUsage().system / 1e6;
}

// A binary min-heap of [when, seq, fn].
class TimerHeap {
  constructor() { this.h = []; this.seq = 0; }
  get size() { return this.h.length; }
  peek() { return this.h[0][0]; }
  push(when, fn) {
    const h = this.h;
    h.push([when, ++this.seq, fn]);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p][0] < h[i][0] || (h[p][0] === h[i][0] && h[p][1] < h[i][1])) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
  }
  pop() {
    const h = this.h;
    const top = h[0];
    const last = h.pop();
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        const less = (a, b) => h[a][0] < h[b][0] || (h[a][0] === h[b][0] && h[a][1] < h[b][1]);
        if (l < h.length && less(l, m)) m = l;
        if (r < h.length && less(r, m)) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top[2];
  }
}

const EMPTY_HEADERS = "{}";
const SILENCE = Buffer.alloc(FRAME_BYTES, 0xff).toString("base64");

class Generator {
  constructor(opts) {
    const url = new URL(opts.url);
    this.host = url.hostname;
    this.port = Number(url.port || 80);
    this.path = url.pathname + url.search;
    this.opts = opts;
    this.random = rng(opts.seed);
    this.slots = Array.from({ length: SLOTS }, () => new Set());
    this.slotIndex = 0;
    this.heap = new TimerHeap();
    this.windowStart = Infinity;
    this.windowEnd = Infinity;
    this.keysEnabled = true;
    this.calls = [];
    this.pingLag = []; this.keyLag = []; this.barge = []; this.keyToAudio = [];
    this.ttfa = []; this.handshake = []; this.pacerLate = [];
    this.errors = {};
    this.mediaSent = 0;
    this.blockedSends = 0;
    this.stopped = false;
  }

  error(kind) { this.errors[kind] = (this.errors[kind] ?? 0) + 1; }
  inWindow(t) { return this.windowStart <= t && t < this.windowEnd; }
  at(when, fn) { this.heap.push(when, fn); this.kick(when); }

  // The pacer: every call's media in its 1 ms slot, and the timed actions.
  startPacer() {
    this.t0 = now();
    this.j = 0;
    this.timer = null;
    this.wakeAt = Infinity;
    this.tick();
  }

  kick(when) {
    if (when < this.wakeAt) this.schedule(when);
  }

  schedule(when) {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.wakeAt = when;
    const delay = Math.max(0, (when - now()) * 1000);
    this.timer = setTimeout(() => { this.timer = null; this.wakeAt = Infinity; this.tick(); }, delay);
  }

  tick() {
    const t = now();
    while (this.t0 + this.j * 0.001 <= t) {
      const due = this.t0 + this.j * 0.001;
      const slot = this.slots[this.j % SLOTS];
      if (slot.size) {
        if (this.windowStart <= due && due < this.windowEnd) this.pacerLate.push(t - due);
        const stamp = String(Date.now());
        for (const call of slot) call.sendMedia(stamp);
      }
      this.j += 1;
    }
    const heap = this.heap;
    while (heap.size && heap.peek() <= t) heap.pop()();
    let wake = this.t0 + this.j * 0.001;
    if (heap.size && heap.peek() < wake) wake = heap.peek();
    this.schedule(wake);
  }

  addToPacer(call) { this.slots[(this.slotIndex + 1) % SLOTS].add(call); this.slotIndex += 1; }
  removeFromPacer(call) { for (const s of this.slots) s.delete(call); }

  connect(callId) {
    const sep = this.path.includes("?") ? "&" : "?";
    const path = this.opts.callQuery ? `${this.path}${sep}CallUUID=${callId}` : this.path;
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: this.host, port: this.port, noDelay: true });
      const key = randomBytes(16).toString("base64");
      let buf = Buffer.alloc(0);
      const timer = setTimeout(() => { sock.destroy(); reject(new Error("connect timeout")); }, 10000);
      const fail = (err) => { clearTimeout(timer); sock.destroy(); reject(err); };
      sock.once("error", (err) => fail(Object.assign(err, { kind: "connect" })));
      sock.once("connect", () => {
        sock.write(
          `GET ${path} HTTP/1.1\r\nHost: ${this.host}:${this.port}\r\n` +
          "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
          "User-Agent: PlivoMS/1.0 (callflow bench)\r\n\r\n",
        );
      });
      const onData = (data) => {
        buf = Buffer.concat([buf, data]);
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        sock.off("data", onData);
        clearTimeout(timer);
        sock.removeAllListeners("error");
        const lines = buf.subarray(0, end).toString("latin1").split("\r\n");
        const rest = buf.subarray(end + 4);
        if (!lines[0].startsWith("HTTP/1.1 101")) {
          return fail(Object.assign(new Error(`handshake refused: ${lines[0]}`), { kind: "handshake" }));
        }
        const accept = createHash("sha1").update(key + WS_GUID).digest("base64");
        const ok = lines.slice(1).some((l) => {
          const i = l.indexOf(":");
          return l.slice(0, i).toLowerCase() === "sec-websocket-accept" && l.slice(i + 1).trim() === accept;
        });
        if (!ok) return fail(Object.assign(new Error("bad Sec-WebSocket-Accept"), { kind: "handshake" }));
        resolve({ sock, rest });
      };
      sock.on("data", onData);
      sock.once("close", () => fail(Object.assign(new Error("closed during the handshake"), { kind: "handshake" })));
    });
  }

  async runCall(index, measured) {
    const began = now();
    let conn;
    const callId = randomUUID();
    try {
      conn = await this.connect(callId);
    } catch (err) {
      this.error(err.kind === "handshake" ? "handshake" : "connect");
      return null;
    }
    conn.sock.removeAllListeners("close");
    if (measured) this.handshake.push(now() - began);
    const call = new SimCall(this, index, conn.sock, measured, callId);
    this.calls.push(call);
    call.attach(conn.rest);
    call.start();
    return call;
  }
}

class SimCall {
  constructor(gen, index, sock, measured, callId) {
    this.gen = gen;
    this.index = index;
    this.sock = sock;
    this.measured = measured;
    this.streamId = randomUUID();
    this.callId = callId ?? randomUUID();
    this.rbuf = Buffer.alloc(0);
    this.fragments = [];
    this.seq = 0;
    this.chunk = 0;
    this.frames = 0;
    this.pings = new Map();
    this.pingId = 0;
    this.finalPing = null;
    this.finalPong = false;
    this.closed = false;
    this.hangingUp = false;
    this.broken = false;
    this.queueEnd = 0;
    this.epoch = 0;
    this.startSent = 0;
    this.firstAudio = null;
    this.state = "waiting"; // waiting | playing | barged | pressed | heard
    this.keySent = 0;
    this.keyEpoch = 0;
    this.keyDone = true;
  }

  attach(rest) {
    this.sock.on("data", (data) => this.onData(data));
    this.sock.on("close", () => this.onClose());
    this.sock.on("error", () => {});
    if (rest.length) this.onData(rest);
  }


  send(data) {
    if (this.broken) return;
    if (!this.sock.write(data)) this.gen.blockedSends += 1;
  }

  sendText(text) { this.send(clientFrame(OP.TEXT, Buffer.from(text))); }
  nextSeq() { return ++this.seq; }

  start() {
    this.sendText(JSON.stringify({
      event: "start",
      sequenceNumber: this.nextSeq(),
      start: {
        callId: this.callId, streamId: this.streamId, accountId: "MABENCHACCOUNT000000",
        tracks: ["inbound"], mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000 },
      },
      extra_headers: EMPTY_HEADERS,
    }));
    this.startSent = now();
    this.gen.addToPacer(this);
  }

  sendMedia(stamp) {
    this.seq += 1;
    this.chunk += 1;
    const text = `{"event":"media","sequenceNumber":${this.seq},"streamId":"${this.streamId}",` +
      `"media":{"track":"inbound","timestamp":"${stamp}","chunk":${this.chunk},"payload":"${SILENCE}"},` +
      `"extra_headers":"${EMPTY_HEADERS}"}`;
    let data = textFrame(text);
    this.frames += 1;
    this.gen.mediaSent += 1;
    if (this.frames % this.gen.opts.pingEvery === 0) {
      this.pingId += 1;
      this.pings.set(this.pingId, now());
      const id = Buffer.alloc(8);
      id.writeBigUInt64BE(BigInt(this.pingId));
      data = Buffer.concat([data, clientFrame(OP.PING, id)]);
    }
    this.send(data);
  }

  sendFinalPing() {
    this.gen.removeFromPacer(this);
    this.pingId += 1;
    this.finalPing = this.pingId;
    this.pings.set(this.pingId, now());
    const id = Buffer.alloc(8);
    id.writeBigUInt64BE(BigInt(this.pingId));
    this.send(clientFrame(OP.PING, id));
  }

  hangUp() {
    if (this.hangingUp) return;
    this.hangingUp = true;
    this.gen.removeFromPacer(this);
    const payload = Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from("caller hung up")]);
    this.send(clientFrame(OP.CLOSE, payload));
  }

  // -- Plivo's playback --
  onPlayAudio(obj, t) {
    const media = obj.media ?? {};
    const payload = media.payload ?? "";
    if (media.contentType !== "audio/x-mulaw" || media.sampleRate !== 8000) this.gen.error("bad_play_audio");
    const pad = payload.endsWith("==") ? 2 : payload.endsWith("=") ? 1 : 0;
    const raw = Math.floor(payload.length / 4) * 3 - pad;
    this.queueEnd = Math.max(t, this.queueEnd) + raw / BYTES_PER_S;
    if (this.firstAudio === null) {
      this.firstAudio = t;
      if (this.measured) this.gen.ttfa.push(t - this.startSent);
    }
    if (this.gen.opts.mode !== "ivr") return;
    if (this.state === "pressed") {
      this.recordKey(t, this.gen.keyToAudio);
      this.keyDone = true;
    }
    if (this.state === "waiting" || this.state === "pressed") {
      this.state = "playing";
      this.keyEpoch += 1;
      if (this.gen.keysEnabled && this.gen.random() < this.gen.opts.bargeFraction) {
        const delay = 0.5 + this.gen.random();
        const epoch = this.keyEpoch;
        this.gen.at(t + delay, () => this.pressKey(epoch, true));
      }
    }
  }

  onCheckpoint(obj, t) {
    const name = obj.name ?? "";
    const epoch = this.epoch;
    this.gen.at(Math.max(t, this.queueEnd), () => this.ack(epoch, name));
  }

  ack(epoch, name) {
    if (epoch !== this.epoch || this.hangingUp) return;
    this.sendText(JSON.stringify({
      sequenceNumber: this.nextSeq(), event: "playedStream", streamId: this.streamId, name,
    }));
    const t = now();
    if (this.gen.opts.mode === "ivr" && this.state === "playing" && this.queueEnd <= t + 1e-3) {
      this.state = "heard";
      if (this.gen.keysEnabled) {
        const delay = 0.2 + 0.3 * this.gen.random();
        const keyEpoch = this.keyEpoch;
        this.gen.at(t + delay, () => this.pressKey(keyEpoch, false));
      }
    }
  }

  onClearAudio(t) {
    this.epoch += 1;
    this.queueEnd = t;
    this.sendText(JSON.stringify({ sequenceNumber: this.nextSeq(), event: "clearedAudio", streamId: this.streamId }));
    if (this.state === "barged") {
      this.recordKey(t, this.gen.barge);
      this.state = "waiting";
      this.keyDone = true;
    }
  }

  // -- the caller's keys --
  pressKey(keyEpoch, barge) {
    if (keyEpoch !== this.keyEpoch || this.hangingUp || !this.gen.keysEnabled) return;
    const t = now();
    if (barge && (this.state !== "playing" || this.queueEnd < t + 0.05)) return;
    if (!barge && this.state !== "heard") return;
    this.sendText(JSON.stringify({
      sequenceNumber: this.nextSeq(), event: "dtmf", streamId: this.streamId,
      dtmf: { digit: "1", track: "inbound", timestamp: String(Date.now()) },
      extra_headers: EMPTY_HEADERS,
    }));
    this.keySent = t;
    this.keyDone = false;
    this.state = barge ? "barged" : "pressed";
  }

  recordKey(t, bucket) {
    if (this.measured && this.gen.inWindow(this.keySent)) {
      const lag = t - this.keySent;
      bucket.push(lag);
      this.gen.keyLag.push(lag);
    }
  }

  pendingKey() { return this.state === "barged" || this.state === "pressed"; }

  // -- receiving --
  onClose() {
    if (!this.hangingUp && !this.closed) this.gen.error("closed_by_server");
    this.markClosed();
  }

  markClosed() {
    if (this.closed) return;
    this.closed = true;
    this.finalPong = true;
    this.keyDone = true;
    this.gen.removeFromPacer(this);
    this.broken = true;
    this.sock.destroy();
  }

  onData(data) {
    this.rbuf = this.rbuf.length ? Buffer.concat([this.rbuf, data]) : data;
    const buf = this.rbuf;
    let pos = 0;
    const size = buf.length;
    while (size - pos >= 2) {
      const b0 = buf[pos], b1 = buf[pos + 1];
      let n = b1 & 0x7f;
      let head = 2;
      if (n === 126) {
        if (size - pos < 4) break;
        n = buf.readUInt16BE(pos + 2);
        head = 4;
      } else if (n === 127) {
        if (size - pos < 10) break;
        n = Number(buf.readBigUInt64BE(pos + 2));
        head = 10;
      }
      let mask = null;
      if (b1 & 0x80) { mask = buf.subarray(pos + head, pos + head + 4); head += 4; }
      if (size - pos < head + n) break;
      let payload = buf.subarray(pos + head, pos + head + n);
      if (mask) {
        payload = Buffer.from(payload);
        for (let i = 0; i < n; i++) payload[i] ^= mask[i & 3];
      }
      pos += head + n;
      this.onFrame(b0 & 0x0f, (b0 & 0x80) !== 0, payload);
      if (this.closed) break;
    }
    this.rbuf = pos >= size ? Buffer.alloc(0) : Buffer.from(buf.subarray(pos));
  }

  onFrame(opcode, fin, payload) {
    if (opcode === OP.TEXT || opcode === OP.BINARY || opcode === OP.CONT) {
      this.fragments.push(payload);
      if (fin) {
        const message = this.fragments.length === 1 ? payload : Buffer.concat(this.fragments);
        this.fragments = [];
        this.onMessage(message);
      }
    } else if (opcode === OP.PONG && payload.length === 8) {
      const ping = Number(payload.readBigUInt64BE(0));
      const sent = this.pings.get(ping);
      this.pings.delete(ping);
      const t = now();
      if (sent !== undefined && this.measured && this.gen.inWindow(sent)) this.gen.pingLag.push(t - sent);
      if (ping === this.finalPing) this.finalPong = true;
    } else if (opcode === OP.PING) {
      this.send(clientFrame(OP.PONG, payload));
    } else if (opcode === OP.CLOSE) {
      if (!this.hangingUp) {
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.gen.error(`closed_by_server_${code}`);
        this.hangingUp = true;
        this.send(clientFrame(OP.CLOSE, payload.subarray(0, 2)));
      }
      this.markClosed();
    }
  }

  onMessage(message) {
    const t = now();
    let obj;
    try {
      obj = JSON.parse(message);
    } catch {
      this.gen.error("unreadable_message");
      return;
    }
    const event = obj?.event;
    if (event === "playAudio") this.onPlayAudio(obj, t);
    else if (event === "checkpoint") this.onCheckpoint(obj, t);
    else if (event === "clearAudio") this.onClearAudio(t);
    else if (event !== "sendDTMF") this.gen.error(event === undefined ? "unreadable_message" : "unknown_command");
  }
}

const sleep = (s) => new Promise((r) => setTimeout(r, Math.max(0, s * 1000)));

async function waitFor(pred, timeoutS) {
  const deadline = now() + timeoutS;
  while (!pred() && now() < deadline) await sleep(0.01);
  return pred();
}

async function ramp(gen, count, rate, measured) {
  const started = now();
  const pending = [];
  for (let i = 0; i < count; i++) {
    pending.push(gen.runCall(i, measured));
    await sleep(started + (i + 1) / rate - now());
  }
  return pending;
}

async function hangUpAll(calls, graceS) {
  for (const c of calls) c.hangUp();
  await waitFor(() => calls.every((c) => c.closed), graceS);
  let stuck = 0;
  for (const c of calls) {
    if (!c.closed) { stuck += 1; c.markClosed(); }
  }
  return stuck;
}

async function withTimeout(promise, s) {
  let timer;
  const t = new Promise((r) => { timer = setTimeout(() => r("timeout"), s * 1000); });
  const out = await Promise.race([promise.then(() => "ok"), t]);
  clearTimeout(timer);
  return out === "ok";
}

async function run(opts) {
  const gen = new Generator(opts);
  const server = opts.serverPid;
  const result = { calls: opts.calls, mode: opts.mode, url: opts.url, generator: "node" };
  const cpuSelf0 = selfCpuS();
  gen.startPacer();
  const warm = await ramp(gen, opts.warmupCalls, 50, false);
  await withTimeout(Promise.all(warm), 10);
  await sleep(opts.warmupS);
  await hangUpAll([...gen.calls], 5);
  gen.calls = [];
  await sleep(0.5);
  const base = server ? procSample(server) : null;
  const rampBegan = now();
  const pending = await ramp(gen, opts.calls, opts.rampRate, true);
  const rampOk = await withTimeout(Promise.all(pending), 15);
  result.ramp_s = Math.round((now() - rampBegan) * 1000) / 1000;
  result.ramp_complete = rampOk;
  await sleep(opts.settleS);
  gen.windowStart = now();
  const cpu0 = server ? procSample(server) : null;
  const self0 = selfCpuS();
  const sys0 = selfSysS();
  const busy0 = machineBusyS();
  await sleep(opts.windowS);
  gen.windowEnd = now();
  const cpu1 = server ? procSample(server) : null;
  const self1 = selfCpuS();
  const sys1 = selfSysS();
  const busy1 = machineBusyS();
  const live = gen.calls.filter((c) => !c.closed);
  result.live_calls_at_window_end = live.length;
  gen.keysEnabled = false;
  await waitFor(() => live.every((c) => c.keyDone), 5);
  const unansweredKeys = live.filter((c) => c.pendingKey() && gen.inWindow(c.keySent)).length;
  let idle = null;
  if (opts.idleTailS > 0) {
    await sleep(opts.idleTailS);
    idle = server ? procSample(server) : null;
  }
  const calls = gen.calls.filter((c) => !c.closed);
  for (const c of calls) c.sendFinalPing();
  await waitFor(() => calls.every((c) => c.finalPong), opts.finalTimeoutS);
  const unread = calls.filter((c) => c.pings.has(c.finalPing)).length;
  let unansweredPings = 0;
  for (const c of calls) {
    for (const [p, t] of c.pings) if (p !== c.finalPing && gen.inWindow(t)) unansweredPings += 1;
  }
  const stuck = await hangUpAll(gen.calls, 5);
  gen.stopped = true;
  if (gen.timer) clearTimeout(gen.timer);
  const cpuSelf1 = selfCpuS();

  const window = gen.windowEnd - gen.windowStart;
  const ms = (xs) => xs.map((x) => x * 1000);
  const genCpu = self1 - self0;
  const serverCpu = cpu0 && cpu1 ? cpu1.cpu_s - cpu0.cpu_s : 0;
  const r3 = (x) => Math.round(x * 1000) / 1000;
  Object.assign(result, {
    window_s: r3(window),
    errors: gen.errors,
    calls_streaming: gen.calls.length,
    unread_at_end: unread,
    unanswered_pings: unansweredPings,
    unanswered_keys: unansweredKeys,
    not_closed: stuck,
    media_sent: gen.mediaSent,
    blocked_sends: gen.blockedSends,
    ping_lag_ms: percentiles(ms(gen.pingLag)),
    key_lag_ms: percentiles(ms(gen.keyLag)),
    lag_ms: percentiles(ms([...gen.pingLag, ...gen.keyLag])),
    barge_in_ms: percentiles(ms(gen.barge)),
    key_to_audio_ms: percentiles(ms(gen.keyToAudio)),
    ttfa_ms: percentiles(ms(gen.ttfa)),
    handshake_ms: percentiles(ms(gen.handshake)),
    pacer_late_ms: percentiles(ms(gen.pacerLate)),
    generator_cpu_window_s: r3(genCpu),
    generator_sys_cpu_window_s: r3(sys1 - sys0),
    other_cpu_window_s: r3(busy1 - busy0 - genCpu - serverCpu),
    generator_cpu_total_s: r3(cpuSelf1 - cpuSelf0),
  });
  if (base && cpu0 && cpu1) {
    result.server = {
      cpu_window_s: r3(serverCpu),
      rss_base_bytes: base.rss_bytes,
      rss_window_start_bytes: cpu0.rss_bytes,
      rss_window_end_bytes: cpu1.rss_bytes,
      rss_idle_bytes: idle ? idle.rss_bytes : null,
    };
  }
  return result;
}

const opts = parseArgs(process.argv.slice(2));
const result = await run(opts);
const text = JSON.stringify(result, null, 1) + "\n";
if (opts.out === "-") process.stdout.write(text);
else writeFileSync(opts.out, text);
process.exit(0);
