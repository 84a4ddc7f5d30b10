/* The bench's load generator in C: N simulated Plivo calls over real WebSockets.
 *
 * The same behaviour, options and JSON result as bench/node/loadgen.mjs and
 * `python -m bench.loadgen` (read their module docstrings for the definitions: the media
 * cadence, Plivo's playback queue and checkpoint acks, the IVR caller's keys, ping probes, the
 * measurement window), in C so that one core holds far more calls than any server under test:
 *
 *     cc -O2 -Wall -Wextra -o bench/results/cgen/loadgen bench/cgen/loadgen.c
 *     bench/results/cgen/loadgen --url ws://127.0.0.1:PORT/ivr/stream --calls 800 \
 *         --mode ivr --server-pid PID --out run.json
 *
 * One thread, one epoll set, non-blocking sockets; a timerfd wakes the loop for the 1 ms media
 * pacer (20 slots of calls) and for the timer heap (acks, key presses, connect timeouts).
 * Client frames are built in place and masked with the all-zero key; what cannot be written at
 * once waits in the call's buffer for EPOLLOUT (counted in `blocked_sends`). `--selftest`
 * checks the JSON reading, the frame headers and SHA-1, and exits. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"

#define SLOTS 20
#define BYTES_PER_S 8000.0
#define CLK_TCK 100.0
static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
static const char SILENCE[] = /* base64 of 160 bytes of 0xff, μ-law silence */
    "////////////////////////////////////////////////////////////////////////////////////////"
    "////////////////////////////////////////////////////////////////////////////////////////"
    "////////////////////////////////////////";

enum { WAITING, PLAYING, BARGED, PRESSED, HEARD };
enum { CONNECTING, HANDSHAKE, OPEN };
enum { T_ACK, T_PRESS, T_CONNECT_TIMEOUT };

typedef struct call {
  int fd, index, measured, batch, phase, settled, want_out;
  double began, start_sent, first_audio, queue_end, key_sent;
  char key[32], stream_id[40], call_id[40];
  buf_t rbuf, wbuf, frag;
  long seq, chunk, frames, epoch, key_epoch, ping_id, final_ping;
  double *ping_sent; /* by ping id - 1; < 0 once answered */
  size_t pings_cap;
  int final_pong, closed, hanging_up, broken, has_first_audio, state, key_done;
  int slot, slot_pos; /* slot < 0: not paced */
} call_t;

typedef struct {
  double when;
  unsigned long seq;
  int type, barge;
  call_t *c;
  long epoch;
  char *name;
} timer_t_;

static struct {
  const char *url, *mode, *server_pid, *out;
  long calls, warmup_calls, ping_every, seed, call_query;
  double ramp_rate, warmup_s, settle_s, window_s, idle_tail_s, final_timeout_s, barge_fraction;
} opt = {NULL, "ivr", "", "-", 0, 5, 25, 1, 0, 100, 1.5, 1.0, 8.0, 0, 5.0, 0.5};

static struct {
  char host[256], path[2048];
  int port, ep, tfd, ivr, keys_enabled;
  struct sockaddr_storage addr;
  socklen_t addrlen;
  uint32_t rng;
  double t0, armed, window_start, window_end;
  long j, media_sent, blocked_sends, pending[2];
  call_t **slot[SLOTS];
  int slot_n[SLOTS], slot_cap[SLOTS], slot_index;
  timer_t_ *heap;
  size_t heap_n, heap_cap;
  unsigned long heap_seq;
  call_t **calls;
  size_t ncalls, calls_cap;
  vec_t ping_lag, key_lag, barge, key_to_audio, ttfa, handshake, pacer_late;
  char err_name[32][48];
  long err_count[32];
  int nerr;
} g;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double random01(void) { /* mulberry32, as loadgen.mjs */
  uint32_t t = (g.rng += 0x6d2b79f5u);
  t = (t ^ (t >> 15)) * (t | 1u);
  t ^= t + (t ^ (t >> 7)) * (t | 61u);
  return (double)(t ^ (t >> 14)) / 4294967296.0;
}

static void uuid4(char out[40]) {
  unsigned char b[16];
  if (getrandom(b, 16, 0) != 16) abort();
  b[6] = (b[6] & 0x0f) | 0x40, b[8] = (b[8] & 0x3f) | 0x80;
  static const char *hex = "0123456789abcdef";
  int o = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
    out[o++] = hex[b[i] >> 4], out[o++] = hex[b[i] & 15];
  }
  out[o] = 0;
}

static void error_kind(const char *kind) {
  for (int i = 0; i < g.nerr; i++)
    if (!strcmp(g.err_name[i], kind)) { g.err_count[i]++; return; }
  if (g.nerr == 32) return;
  snprintf(g.err_name[g.nerr], sizeof g.err_name[0], "%s", kind);
  g.err_count[g.nerr++] = 1;
}

static void run_timer(timer_t_ *x);
static int in_window(double t) { return g.window_start <= t && t < g.window_end; }

/* -- the timer heap (when, then insertion order) -------------------------------------------- */

static int t_less(const timer_t_ *a, const timer_t_ *b) {
  return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void at(double when, int type, call_t *c, long epoch, int barge, const char *name, size_t nlen) {
  if (g.heap_n == g.heap_cap) {
    g.heap_cap = g.heap_cap ? g.heap_cap * 2 : 1024;
    g.heap = realloc(g.heap, g.heap_cap * sizeof *g.heap);
    if (!g.heap) abort();
  }
  timer_t_ x = {when, ++g.heap_seq, type, barge, c, epoch, NULL};
  if (name) {
    x.name = malloc(nlen + 1);
    memcpy(x.name, name, nlen);
    x.name[nlen] = 0;
  }
  size_t i = g.heap_n++;
  while (i > 0 && t_less(&x, &g.heap[(i - 1) / 2])) g.heap[i] = g.heap[(i - 1) / 2], i = (i - 1) / 2;
  g.heap[i] = x;
}

static timer_t_ heap_pop(void) {
  timer_t_ top = g.heap[0], last = g.heap[--g.heap_n];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, m = l;
    if (l >= g.heap_n) break;
    if (l + 1 < g.heap_n && t_less(&g.heap[l + 1], &g.heap[l])) m = l + 1;
    if (!t_less(&g.heap[m], &last)) break;
    g.heap[i] = g.heap[m], i = m;
  }
  if (g.heap_n) g.heap[i] = last;
  return top;
}

/* -- sending -------------------------------------------------------------------------------- */

static void set_events(call_t *c, int out) {
  if (c->want_out == out || c->closed) return;
  c->want_out = out;
  struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void send_raw(call_t *c, const void *data, size_t n) {
  if (c->broken) return;
  if (buf_live(&c->wbuf)) { buf_add(&c->wbuf, data, n); return; }
  ssize_t w = send(c->fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (w < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) { c->broken = 1; return; } /* epoll reports the close */
    w = 0;
  }
  if ((size_t)w < n) {
    buf_add(&c->wbuf, (const char *)data + w, n - (size_t)w);
    g.blocked_sends++;
    set_events(c, 1);
  }
}

static void flush(call_t *c) {
  while (buf_live(&c->wbuf) && !c->broken) {
    ssize_t w = send(c->fd, c->wbuf.p + c->wbuf.off, buf_live(&c->wbuf), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      c->broken = 1;
      return;
    }
    c->wbuf.off += (size_t)w;
  }
  buf_free(&c->wbuf);
  set_events(c, 0);
}

static void send_frame(call_t *c, int opcode, const void *payload, size_t n) {
  unsigned char stack[4096], *f = n + 14 <= sizeof stack ? stack : malloc(n + 14);
  size_t h = frame_head(f, opcode, n);
  memcpy(f + h, payload, n);
  send_raw(c, f, h + n);
  if (f != stack) free(f);
}

/* A text frame from a printf format (a long checkpoint name goes through the heap). */
__attribute__((format(printf, 2, 3))) static void send_text(call_t *c, const char *fmt, ...) {
  char stack[1024], *text = stack;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(stack, sizeof stack, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof stack) {
    if (!(text = malloc((size_t)n + 1))) abort();
    va_start(ap, fmt);
    vsnprintf(text, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  send_frame(c, 1, text, (size_t)n);
  if (text != stack) free(text);
}

static void ping_frame(call_t *c, unsigned char *f) { /* 14 bytes: a ping carrying its id */
  c->ping_id++;
  if ((size_t)c->ping_id > c->pings_cap) {
    c->pings_cap = c->pings_cap ? c->pings_cap * 2 : 64;
    c->ping_sent = realloc(c->ping_sent, c->pings_cap * sizeof(double));
    if (!c->ping_sent) abort();
  }
  c->ping_sent[c->ping_id - 1] = now();
  size_t h = frame_head(f, 9, 8);
  for (int i = 0; i < 8; i++) f[h + i] = (unsigned char)((uint64_t)c->ping_id >> (56 - 8 * i));
}

/* -- the pacer ------------------------------------------------------------------------------ */

static void add_to_pacer(call_t *c) {
  int s = (g.slot_index + 1) % SLOTS;
  g.slot_index++;
  if (g.slot_n[s] == g.slot_cap[s]) {
    g.slot_cap[s] = g.slot_cap[s] ? g.slot_cap[s] * 2 : 64;
    g.slot[s] = realloc(g.slot[s], (size_t)g.slot_cap[s] * sizeof(call_t *));
    if (!g.slot[s]) abort();
  }
  c->slot = s, c->slot_pos = g.slot_n[s];
  g.slot[s][g.slot_n[s]++] = c;
}

static void remove_from_pacer(call_t *c) {
  if (c->slot < 0) return;
  int s = c->slot;
  call_t *last = g.slot[s][--g.slot_n[s]];
  g.slot[s][c->slot_pos] = last;
  last->slot_pos = c->slot_pos;
  c->slot = -1;
}

static char *put_long(char *p, long long v) {
  char tmp[24];
  int n = 0;
  do tmp[n++] = (char)('0' + v % 10), v /= 10; while (v);
  while (n) *p++ = tmp[--n];
  return p;
}

#define PUT(p, lit) (memcpy(p, lit, sizeof(lit) - 1), p + sizeof(lit) - 1)

static void send_media(call_t *c, long long stamp) {
  unsigned char f[600];
  char *p = (char *)f + 8, *text = p; /* a 4-byte header (126 ≤ n < 65536) and the mask */
  c->seq++, c->chunk++;
  p = PUT(p, "{\"event\":\"media\",\"sequenceNumber\":");
  p = put_long(p, c->seq);
  p = PUT(p, ",\"streamId\":\"");
  memcpy(p, c->stream_id, 36), p += 36;
  p = PUT(p, "\",\"media\":{\"track\":\"inbound\",\"timestamp\":\"");
  p = put_long(p, stamp);
  p = PUT(p, "\",\"chunk\":");
  p = put_long(p, c->chunk);
  p = PUT(p, ",\"payload\":\"");
  p = PUT(p, SILENCE);
  p = PUT(p, "\"},\"extra_headers\":\"{}\"}");
  size_t n = (size_t)(p - text);
  frame_head(f, 1, n);
  n += 8;
  c->frames++;
  g.media_sent++;
  if (c->frames % opt.ping_every == 0) ping_frame(c, f + n), n += 14;
  send_raw(c, f, n);
}

static void tick(void) {
  double t = now();
  while (g.t0 + (double)g.j * 0.001 <= t) {
    double due = g.t0 + (double)g.j * 0.001;
    int s = (int)(g.j % SLOTS);
    if (g.slot_n[s]) {
      if (in_window(due)) vec_push(&g.pacer_late, t - due);
      long long stamp = wall_ms();
      for (int i = 0; i < g.slot_n[s]; i++) send_media(g.slot[s][i], stamp);
    }
    g.j++;
  }
  while (g.heap_n && g.heap[0].when <= t) {
    timer_t_ x = heap_pop();
    run_timer(&x);
    free(x.name);
  }
}

/* -- one call: Plivo's side ----------------------------------------------------------------- */

static void mark_closed(call_t *c) {
  if (c->closed) return;
  c->closed = c->final_pong = c->key_done = c->broken = 1;
  remove_from_pacer(c);
  close(c->fd);
  buf_free(&c->wbuf), buf_free(&c->rbuf), buf_free(&c->frag);
}

static void record_key(call_t *c, double t, vec_t *bucket) {
  if (c->measured && in_window(c->key_sent)) {
    vec_push(bucket, t - c->key_sent);
    vec_push(&g.key_lag, t - c->key_sent);
  }
}

static void hang_up(call_t *c) {
  if (c->hanging_up) return;
  c->hanging_up = 1;
  remove_from_pacer(c);
  send_frame(c, 8, "\x03\xe8" "caller hung up", 16);
}

static void send_final_ping(call_t *c) {
  unsigned char f[14];
  remove_from_pacer(c);
  ping_frame(c, f);
  c->final_ping = c->ping_id;
  send_raw(c, f, 14);
}

static void press_key(call_t *c, long key_epoch, int barge) {
  if (key_epoch != c->key_epoch || c->hanging_up || !g.keys_enabled) return;
  double t = now();
  if (barge && (c->state != PLAYING || c->queue_end < t + 0.05)) return;
  if (!barge && c->state != HEARD) return;
  send_text(c, "{\"sequenceNumber\":%ld,\"event\":\"dtmf\",\"streamId\":\"%s\",\"dtmf\":{\"digit\":\"1\","
            "\"track\":\"inbound\",\"timestamp\":\"%lld\"},\"extra_headers\":\"{}\"}",
            ++c->seq, c->stream_id, wall_ms());
  c->key_sent = t;
  c->key_done = 0;
  c->state = barge ? BARGED : PRESSED;
}

static void ack(call_t *c, long epoch, const char *name) {
  if (epoch != c->epoch || c->hanging_up) return;
  send_text(c, "{\"sequenceNumber\":%ld,\"event\":\"playedStream\",\"streamId\":\"%s\",\"name\":\"%s\"}",
            ++c->seq, c->stream_id, name);
  double t = now();
  if (g.ivr && c->state == PLAYING && c->queue_end <= t + 1e-3) {
    c->state = HEARD;
    if (g.keys_enabled) at(t + 0.2 + 0.3 * random01(), T_PRESS, c, c->key_epoch, 0, NULL, 0);
  }
}

static void on_play_audio(call_t *c, const command_t *cmd, double t) {
  if (!jstr_is(&cmd->content_type, "audio/x-mulaw") || !cmd->has_sample_rate || cmd->sample_rate != 8000)
    error_kind("bad_play_audio");
  size_t raw = cmd->payload.present ? b64_bytes(&cmd->payload) : 0;
  c->queue_end = (t > c->queue_end ? t : c->queue_end) + (double)raw / BYTES_PER_S;
  if (!c->has_first_audio) {
    c->has_first_audio = 1, c->first_audio = t;
    if (c->measured) vec_push(&g.ttfa, t - c->start_sent);
  }
  if (!g.ivr) return;
  if (c->state == PRESSED) record_key(c, t, &g.key_to_audio), c->key_done = 1;
  if (c->state == WAITING || c->state == PRESSED) {
    c->state = PLAYING;
    c->key_epoch++;
    if (g.keys_enabled && random01() < opt.barge_fraction)
      at(t + 0.5 + random01(), T_PRESS, c, c->key_epoch, 1, NULL, 0);
  }
}

static void on_message(call_t *c, const unsigned char *m, size_t n) {
  double t = now();
  command_t cmd;
  if (parse_command((const char *)m, n, &cmd) < 0 || !cmd.event.present) {
    error_kind("unreadable_message");
  } else if (jstr_is(&cmd.event, "playAudio")) {
    on_play_audio(c, &cmd, t);
  } else if (jstr_is(&cmd.event, "checkpoint")) {
    double when = t > c->queue_end ? t : c->queue_end;
    at(when, T_ACK, c, c->epoch, 0, cmd.name.present ? cmd.name.raw : "", cmd.name.raw_len);
  } else if (jstr_is(&cmd.event, "clearAudio")) {
    c->epoch++;
    c->queue_end = t;
    send_text(c, "{\"sequenceNumber\":%ld,\"event\":\"clearedAudio\",\"streamId\":\"%s\"}", ++c->seq,
              c->stream_id);
    if (c->state == BARGED) record_key(c, t, &g.barge), c->state = WAITING, c->key_done = 1;
  } else if (!jstr_is(&cmd.event, "sendDTMF")) {
    error_kind("unknown_command");
  }
}

static void on_frame(call_t *c, int opcode, int fin, unsigned char *p, size_t n) {
  if (opcode <= 2) { /* continuation, text, binary */
    if (fin && !buf_live(&c->frag)) { on_message(c, p, n); return; }
    buf_add(&c->frag, p, n);
    if (fin) {
      buf_t m = c->frag;
      memset(&c->frag, 0, sizeof c->frag);
      on_message(c, m.p + m.off, buf_live(&m));
      buf_free(&m);
    }
  } else if (opcode == 10 && n == 8) { /* pong */
    uint64_t id = 0;
    for (int i = 0; i < 8; i++) id = id << 8 | p[i];
    double t = now();
    if (id >= 1 && id <= (uint64_t)c->ping_id && c->ping_sent[id - 1] >= 0) {
      double sent = c->ping_sent[id - 1];
      c->ping_sent[id - 1] = -1;
      if (c->measured && in_window(sent)) vec_push(&g.ping_lag, t - sent);
    }
    if ((long)id == c->final_ping) c->final_pong = 1;
  } else if (opcode == 9) {
    send_frame(c, 10, p, n);
  } else if (opcode == 8) {
    if (!c->hanging_up) {
      char kind[48];
      snprintf(kind, sizeof kind, "closed_by_server_%d", n >= 2 ? p[0] << 8 | p[1] : 1005);
      error_kind(kind);
      c->hanging_up = 1;
      send_frame(c, 8, p, n >= 2 ? 2 : n);
    }
    mark_closed(c);
  }
}

/* Handles the whole frames in buf; the bytes used. */
static size_t parse_frames(call_t *c, unsigned char *buf, size_t size) {
  size_t pos = 0;
  while (size - pos >= 2 && !c->closed) {
    unsigned char b0 = buf[pos], b1 = buf[pos + 1];
    uint64_t n = b1 & 0x7f;
    size_t head = 2;
    if (n == 126) {
      if (size - pos < 4) break;
      n = (uint64_t)buf[pos + 2] << 8 | buf[pos + 3], head = 4;
    } else if (n == 127) {
      if (size - pos < 10) break;
      n = 0;
      for (int i = 0; i < 8; i++) n = n << 8 | buf[pos + 2 + i];
      head = 10;
    }
    unsigned char mask[4] = {0};
    int masked = b1 & 0x80;
    if (masked) {
      if (size - pos < head + 4) break;
      memcpy(mask, buf + pos + head, 4), head += 4;
    }
    if (size - pos < head || n > size - pos - head) break;
    unsigned char *payload = buf + pos + head;
    if (masked) for (uint64_t i = 0; i < n; i++) payload[i] ^= mask[i & 3];
    pos += head + (size_t)n;
    on_frame(c, b0 & 0x0f, (b0 & 0x80) != 0, payload, (size_t)n);
  }
  return pos;
}

static void parse_rbuf(call_t *c) {
  size_t pos = parse_frames(c, c->rbuf.p + c->rbuf.off, buf_live(&c->rbuf));
  if (c->closed) return;
  c->rbuf.off += pos;
  if (!buf_live(&c->rbuf)) buf_free(&c->rbuf);
}

/* Bytes read from the socket: parsed in place, only a partial frame is kept. */
static void on_bytes(call_t *c, unsigned char *data, size_t n) {
  if (buf_live(&c->rbuf)) {
    buf_add(&c->rbuf, data, n);
    parse_rbuf(c);
    return;
  }
  size_t pos = parse_frames(c, data, n);
  if (!c->closed && pos < n) buf_add(&c->rbuf, data + pos, n - pos);
}

/* -- connecting ----------------------------------------------------------------------------- */

static void settle(call_t *c, const char *failure) {
  if (c->settled) return;
  c->settled = 1;
  g.pending[c->batch]--;
  if (!failure) return;
  error_kind(failure);
  c->closed = c->broken = 1;
  close(c->fd);
  buf_free(&c->rbuf), buf_free(&c->wbuf);
}

static void start_call(call_t *c) {
  send_text(c, "{\"event\":\"start\",\"sequenceNumber\":%ld,\"start\":{\"callId\":\"%s\",\"streamId\":\"%s\","
            "\"accountId\":\"MABENCHACCOUNT000000\",\"tracks\":[\"inbound\"],\"mediaFormat\":"
            "{\"encoding\":\"audio/x-mulaw\",\"sampleRate\":8000}},\"extra_headers\":\"{}\"}",
            ++c->seq, c->call_id, c->stream_id);
  c->start_sent = now();
  add_to_pacer(c);
}

static void on_handshake(call_t *c) {
  char *s = (char *)c->rbuf.p + c->rbuf.off, *end = memmem(s, buf_live(&c->rbuf), "\r\n\r\n", 4);
  if (!end) return;
  *end = 0;
  if (strncmp(s, "HTTP/1.1 101", 12)) { settle(c, "handshake"); return; }
  char in[96], want[40];
  unsigned char digest[20];
  size_t n = (size_t)snprintf(in, sizeof in, "%s%s", c->key, WS_GUID);
  sha1((unsigned char *)in, n, digest);
  base64(digest, 20, want);
  int ok = 0;
  for (char *line = strstr(s, "\r\n"); line && !ok; line = strstr(line, "\r\n")) {
    line += 2;
    char *colon = strchr(line, ':'), *eol = strstr(line, "\r\n");
    if (!colon || (eol && colon > eol)) continue;
    if ((size_t)(colon - line) != 20 || strncasecmp(line, "sec-websocket-accept", 20)) continue;
    char *v = colon + 1, *ve = eol ? eol : v + strlen(v);
    while (v < ve && (*v == ' ' || *v == '\t')) v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    ok = (size_t)(ve - v) == strlen(want) && !memcmp(v, want, strlen(want));
  }
  if (!ok) { settle(c, "handshake"); return; }
  c->rbuf.off += (size_t)(end + 4 - s);
  settle(c, NULL);
  c->phase = OPEN;
  if (c->measured) vec_push(&g.handshake, now() - c->began);
  if (g.ncalls == g.calls_cap) {
    g.calls_cap = g.calls_cap ? g.calls_cap * 2 : 1024;
    g.calls = realloc(g.calls, g.calls_cap * sizeof *g.calls);
    if (!g.calls) abort();
  }
  g.calls[g.ncalls++] = c;
  start_call(c);
  parse_rbuf(c);
}

static void run_call(int index, int measured, int batch) {
  call_t *c = calloc(1, sizeof *c);
  c->index = index, c->measured = measured, c->batch = batch, c->slot = -1, c->key_done = 1;
  c->began = now();
  uuid4(c->call_id), uuid4(c->stream_id);
  unsigned char k[16];
  if (getrandom(k, 16, 0) != 16) abort();
  base64(k, 16, c->key);
  g.pending[batch]++;
  c->fd = socket(g.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) { c->settled = 1, g.pending[batch]--, error_kind("connect"); return; }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&g.addr, g.addrlen) < 0 && errno != EINPROGRESS) {
    settle(c, "connect");
    return;
  }
  struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
  c->want_out = 1;
  epoll_ctl(g.ep, EPOLL_CTL_ADD, c->fd, &ev);
  at(now() + 10, T_CONNECT_TIMEOUT, c, 0, 0, NULL, 0);
}

static void on_io(call_t *c, uint32_t events) {
  if (c->closed) return;
  if (c->phase == CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err || (events & EPOLLERR)) { settle(c, "connect"); return; }
    if (!(events & EPOLLOUT)) return;
    c->phase = HANDSHAKE;
    char req[2560];
    const char *sep = strchr(g.path, '?') ? "&" : "?";
    char path[2200];
    if (opt.call_query) snprintf(path, sizeof path, "%s%sCallUUID=%s", g.path, sep, c->call_id);
    else snprintf(path, sizeof path, "%s", g.path);
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                     "User-Agent: PlivoMS/1.0 (callflow bench)\r\n\r\n",
                     path, g.host, g.port, c->key);
    set_events(c, 0);
    send_raw(c, req, (size_t)n);
    return;
  }
  if ((events & EPOLLOUT) && buf_live(&c->wbuf)) flush(c);
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  static unsigned char in[262144];
  ssize_t r = recv(c->fd, in, sizeof in, MSG_DONTWAIT);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
  if (r <= 0) {
    if (c->phase == HANDSHAKE) { settle(c, r == 0 ? "handshake" : "connect"); return; }
    if (!c->hanging_up && !c->closed) error_kind("closed_by_server");
    mark_closed(c);
    return;
  }
  if (c->phase == HANDSHAKE) buf_add(&c->rbuf, in, (size_t)r), on_handshake(c);
  else on_bytes(c, in, (size_t)r);
}

static void run_timer(timer_t_ *x) {
  if (x->type == T_ACK) ack(x->c, x->epoch, x->name);
  else if (x->type == T_PRESS) press_key(x->c, x->epoch, x->barge);
  else if (!x->c->settled) settle(x->c, "connect"); /* connect timeout */
}

/* -- the loop and the run's phases ---------------------------------------------------------- */

static int timer_tag;

/* Runs the loop until `deadline`, or until pred() holds (checked every 10 ms, as loadgen.mjs). */
static int loop_until(double deadline, int (*pred)(void)) {
  double checked = -1;
  struct epoll_event evs[1024];
  for (;;) {
    tick();
    double t = now();
    if (pred && t - checked >= 0.01) {
      checked = t;
      if (pred()) return 1;
    }
    if (t >= deadline) return pred ? pred() : 0;
    double wake = g.t0 + (double)g.j * 0.001;
    if (g.heap_n && g.heap[0].when < wake) wake = g.heap[0].when;
    if (deadline < wake) wake = deadline;
    if (pred && checked + 0.01 < wake) wake = checked + 0.01;
    if (wake != g.armed) {
      struct itimerspec its = {{0, 0}, {(time_t)wake, (long)((wake - (double)(time_t)wake) * 1e9)}};
      if (!its.it_value.tv_sec && !its.it_value.tv_nsec) its.it_value.tv_nsec = 1;
      timerfd_settime(g.tfd, TFD_TIMER_ABSTIME, &its, NULL);
      g.armed = wake;
    }
    int n = epoll_wait(g.ep, evs, 1024, -1);
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == &timer_tag) {
        uint64_t expirations;
        if (read(g.tfd, &expirations, 8) == 8) g.armed = -1;
      } else {
        on_io(evs[i].data.ptr, evs[i].events);
      }
    }
  }
}

static void sleep_s(double s) { loop_until(now() + s, NULL); }
static int batch_waiting;
static int batch_done(void) { return g.pending[batch_waiting] == 0; }

static void ramp(long count, double rate, int measured) {
  double started = now();
  for (long i = 0; i < count; i++) {
    run_call((int)i, measured, measured);
    loop_until(started + (double)(i + 1) / rate, NULL);
  }
}

static call_t **wait_set;
static size_t wait_n;
static int all_closed(void) {
  for (size_t i = 0; i < wait_n; i++) if (!wait_set[i]->closed) return 0;
  return 1;
}
static int all_key_done(void) {
  for (size_t i = 0; i < wait_n; i++) if (!wait_set[i]->key_done) return 0;
  return 1;
}
static int all_final_pong(void) {
  for (size_t i = 0; i < wait_n; i++) if (!wait_set[i]->final_pong) return 0;
  return 1;
}

static long hang_up_all(call_t **calls, size_t n, double grace) {
  for (size_t i = 0; i < n; i++) hang_up(calls[i]);
  wait_set = calls, wait_n = n;
  loop_until(now() + grace, all_closed);
  long stuck = 0;
  for (size_t i = 0; i < n; i++)
    if (!calls[i]->closed) stuck++, mark_closed(calls[i]);
  return stuck;
}

#include "report.h"
