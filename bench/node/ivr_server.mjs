// The bench IVR as a bare Node `ws` server: the physical-limit column of the bench.
//
// Same behaviour as bench/flows/ivr.py and bench/servers/sdk_ivr.py: on `start` play a
// prompt (each ≤ 12 288-byte μ-law chunk as `playAudio` followed by a `checkpoint`); a key
// pressed while it plays sends `clearAudio` and, once `clearedAudio` comes back, the next
// prompt; a key pressed after the last checkpoint was acknowledged starts the next prompt
// (PROTOCOL.md §3). The prompts are the bench flow's own μ-law bytes, written by the runner
// to --prompts DIR (prompt0.ulaw, prompt1.ulaw) and base64-encoded once at startup, as
// callflow caches an Audio's payloads. Served with `ws`'s WebSocketServer and its defaults.
//
//     node bench/node/ivr_server.mjs --port 0 --prompts DIR

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { WebSocketServer } from "ws";

const CHUNK_BYTES = 12288;

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const port = Number(option("--port", "0"));
const host = option("--host", "127.0.0.1");
const dir = option("--prompts", null);
if (!dir) throw new Error("--prompts DIR is required");

const PROMPTS = [0, 1].map((i) => {
  const raw = readFileSync(join(dir, `prompt${i}.ulaw`));
  const chunks = [];
  for (let at = 0; at < raw.length; at += CHUNK_BYTES) {
    chunks.push(raw.subarray(at, at + CHUNK_BYTES).toString("base64"));
  }
  return chunks;
});

const wss = new WebSocketServer({ host, port });

wss.on("connection", (ws) => {
  let streamId = "";
  let turn = 0;
  let playing = false;
  let clearing = false;
  let last = "";
  let names = 0;

  const playNext = () => {
    const chunks = PROMPTS[turn % PROMPTS.length];
    turn += 1;
    playing = true;
    for (const payload of chunks) {
      ws.send(
        `{"event":"playAudio","streamId":"${streamId}","media":{"contentType":"audio/x-mulaw",` +
          `"sampleRate":8000,"payload":"${payload}"}}`,
      );
      last = `m${++names}`;
      ws.send(`{"event":"checkpoint","streamId":"${streamId}","name":"${last}"}`);
    }
  };

  ws.on("message", (data) => {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    switch (msg.event) {
      case "media":
        return;
      case "start":
        streamId = msg.start?.streamId ?? msg.streamId ?? "";
        playNext();
        return;
      case "dtmf":
        if (playing) {
          if (!clearing) {
            clearing = true;
            ws.send(`{"event":"clearAudio","streamId":"${streamId}"}`);
          }
        } else {
          playNext();
        }
        return;
      case "clearedAudio":
        if (clearing) {
          clearing = false;
          playNext();
        }
        return;
      case "playedStream":
        if (msg.name === last) playing = false;
        return;
      default:
        return;
    }
  });
});

wss.on("listening", () => {
  const a = wss.address();
  process.stdout.write(`listening on http://${a.address}:${a.port}\n`);
});

const stop = () => wss.close(() => process.exit(0));
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
