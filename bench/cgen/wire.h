/* The C load generator's wire helpers (included once, by loadgen.c): SHA-1 and base64 for the
 * WebSocket handshake, client frame headers, the minimal JSON reading of the server's
 * commands, percentiles and a growable byte buffer. Plain C11, no third-party code. */
#ifndef CGEN_WIRE_H
#define CGEN_WIRE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* -- a growable byte buffer ----------------------------------------------------------------- */

typedef struct {
  unsigned char *p;
  size_t len, cap, off; /* bytes [off, len) are live */
} buf_t;

static void buf_reserve(buf_t *b, size_t more) {
  if (b->off && b->off == b->len) b->off = b->len = 0;
  if (b->len + more <= b->cap) return;
  if (b->off) { /* compact first */
    memmove(b->p, b->p + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
    if (b->len + more <= b->cap) return;
  }
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + more) cap *= 2;
  b->p = realloc(b->p, cap);
  if (!b->p) abort();
  b->cap = cap;
}

static void buf_add(buf_t *b, const void *data, size_t n) {
  buf_reserve(b, n);
  memcpy(b->p + b->len, data, n);
  b->len += n;
}

static size_t buf_live(const buf_t *b) { return b->len - b->off; }
static void buf_free(buf_t *b) { free(b->p); memset(b, 0, sizeof *b); }

/* -- SHA-1 (FIPS 180-4) and base64, for Sec-WebSocket-Accept -------------------------------- */

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static void sha1_block(uint32_t h[5], const unsigned char *p) {
  uint32_t w[80];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 80; i++) w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
    else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
    else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
    else f = b ^ c ^ d, k = 0xCA62C1D6;
    uint32_t t = ROL(a, 5) + f + e + k + w[i];
    e = d, d = c, c = ROL(b, 30), b = a, a = t;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void sha1(const unsigned char *msg, size_t n, unsigned char out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  unsigned char block[64];
  size_t i = 0;
  for (; i + 64 <= n; i += 64) sha1_block(h, msg + i);
  size_t rest = n - i;
  memset(block, 0, 64);
  memcpy(block, msg + i, rest);
  block[rest] = 0x80;
  if (rest >= 56) { sha1_block(h, block); memset(block, 0, 64); }
  uint64_t bits = (uint64_t)n * 8;
  for (int k = 0; k < 8; k++) block[63 - k] = (unsigned char)(bits >> (8 * k));
  sha1_block(h, block);
  for (int k = 0; k < 20; k++) out[k] = (unsigned char)(h[k / 4] >> (24 - 8 * (k % 4)));
}

static size_t base64(const unsigned char *in, size_t n, char *out) {
  static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
    out[o++] = T[v >> 18 & 63];
    out[o++] = T[v >> 12 & 63];
    out[o++] = i + 1 < n ? T[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? T[v & 63] : '=';
  }
  out[o] = 0;
  return o;
}

/* -- client frames: final, masked with the all-zero key (RFC 6455 §5.3) --------------------- */

/* Writes the header (with its zero mask) for a payload of n bytes into h; its length. */
static size_t frame_head(unsigned char *h, int opcode, size_t n) {
  size_t k;
  h[0] = (unsigned char)(0x80 | opcode);
  if (n < 126) {
    h[1] = (unsigned char)(0x80 | n), k = 2;
  } else if (n < 65536) {
    h[1] = 0x80 | 126, h[2] = (unsigned char)(n >> 8), h[3] = (unsigned char)n, k = 4;
  } else {
    h[1] = 0x80 | 127, k = 10;
    for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
  }
  memset(h + k, 0, 4);
  return k + 4;
}

/* -- the server's JSON: just enough of it, correctly ---------------------------------------- */

/* A string value as it stands in the JSON text (escapes kept, quotes off) and its length in
 * characters once unescaped; the last two unescaped characters (for base64 padding). */
typedef struct {
  const char *raw;
  size_t raw_len, chars;
  char last, last2;
  int present;
} jstr_t;

/* What a command carries, as far as Plivo's side of the bench needs it. */
typedef struct {
  jstr_t event, name, content_type, payload;
  double sample_rate;
  int has_sample_rate;
} command_t;

static const char *j_ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* p at the opening quote; returns past the closing one, or NULL if malformed. */
static const char *j_string(const char *p, const char *e, jstr_t *s) {
  jstr_t tmp = {0};
  if (!s) s = &tmp;
  memset(s, 0, sizeof *s);
  if (p >= e || *p != '"') return NULL;
  s->raw = ++p;
  while (p < e && *p != '"') {
    char c = *p++;
    if ((unsigned char)c < 0x20) return NULL;
    if (c == '\\') {
      if (p >= e) return NULL;
      c = *p++;
      if (c == 'u') {
        if (e - p < 4) return NULL;
        p += 4, c = '?';
      } else if (!strchr("\"\\/bfnrt", c)) {
        return NULL;
      }
    }
    if ((c & 0xC0) != 0x80) s->chars++; /* count a UTF-8 sequence once */
    s->last2 = s->last, s->last = c;
  }
  if (p >= e) return NULL;
  s->raw_len = (size_t)(p - s->raw);
  s->present = 1;
  return p + 1;
}

static const char *j_value(const char *p, const char *e, int depth);

static const char *j_object(const char *p, const char *e, int depth, command_t *cmd, int in_media) {
  p = j_ws(p + 1, e);
  if (p < e && *p == '}') return p + 1;
  for (;;) {
    jstr_t key;
    p = j_string(j_ws(p, e), e, &key);
    if (!p) return NULL;
    p = j_ws(p, e);
    if (p >= e || *p != ':') return NULL;
    p = j_ws(p + 1, e);
    if (p >= e) return NULL;
#define KEY(lit) (key.raw_len == sizeof(lit) - 1 && !memcmp(key.raw, lit, sizeof(lit) - 1))
    jstr_t *want = NULL;
    if (cmd && !in_media && KEY("event")) want = &cmd->event;
    else if (cmd && !in_media && KEY("name")) want = &cmd->name;
    else if (cmd && in_media && KEY("contentType")) want = &cmd->content_type;
    else if (cmd && in_media && KEY("payload")) want = &cmd->payload;
    if (want && *p == '"') {
      p = j_string(p, e, want);
    } else if (cmd && !in_media && KEY("media") && *p == '{') {
      p = j_object(p, e, depth + 1, cmd, 1);
    } else if (cmd && in_media && KEY("sampleRate") && (*p == '-' || (*p >= '0' && *p <= '9'))) {
      const char *q = j_value(p, e, depth); /* validates the number's syntax */
      char num[64];
      if (q && (size_t)(q - p) < sizeof num) {
        memcpy(num, p, (size_t)(q - p));
        num[q - p] = 0;
        cmd->sample_rate = strtod(num, NULL);
        cmd->has_sample_rate = 1;
      }
      p = q;
    } else {
      if (want) want->present = 0;
      p = j_value(p, e, depth);
    }
#undef KEY
    if (!p) return NULL;
    p = j_ws(p, e);
    if (p < e && *p == ',') { p++; continue; }
    if (p < e && *p == '}') return p + 1;
    return NULL;
  }
}

static const char *j_value(const char *p, const char *e, int depth) {
  if (depth > 64 || p >= e) return NULL;
  if (*p == '"') return j_string(p, e, NULL);
  if (*p == '{') return j_object(p, e, depth + 1, NULL, 0);
  if (*p == '[') {
    p = j_ws(p + 1, e);
    if (p < e && *p == ']') return p + 1;
    for (;;) {
      p = j_value(j_ws(p, e), e, depth + 1);
      if (!p) return NULL;
      p = j_ws(p, e);
      if (p < e && *p == ',') { p++; continue; }
      if (p < e && *p == ']') return p + 1;
      return NULL;
    }
  }
  static const char *const lits[] = {"true", "false", "null"};
  for (int i = 0; i < 3; i++) {
    size_t n = strlen(lits[i]);
    if ((size_t)(e - p) >= n && !memcmp(p, lits[i], n)) return p + n;
  }
  const char *s = p;
  if (p < e && *p == '-') p++;
  if (p >= e || *p < '0' || *p > '9') return NULL;
  if (*p == '0') p++;
  else while (p < e && *p >= '0' && *p <= '9') p++;
  if (p < e && *p == '.') {
    if (++p >= e || *p < '0' || *p > '9') return NULL;
    while (p < e && *p >= '0' && *p <= '9') p++;
  }
  if (p < e && (*p == 'e' || *p == 'E')) {
    if (++p < e && (*p == '+' || *p == '-')) p++;
    if (p >= e || *p < '0' || *p > '9') return NULL;
    while (p < e && *p >= '0' && *p <= '9') p++;
  }
  return p > s ? p : NULL;
}

/* Reads one message; 0 if it is JSON (any value), -1 if not. cmd's fields are those of a
 * top-level object (absent otherwise). */
static int parse_command(const char *text, size_t n, command_t *cmd) {
  memset(cmd, 0, sizeof *cmd);
  const char *e = text + n, *p = j_ws(text, e);
  if (p < e && *p == '{') p = j_object(p, e, 0, cmd, 0);
  else p = j_value(p, e, 0);
  if (!p || j_ws(p, e) != e) return -1;
  return 0;
}

static int jstr_is(const jstr_t *s, const char *lit) {
  return s->present && s->raw_len == strlen(lit) && !memcmp(s->raw, lit, s->raw_len);
}

/* Bytes of audio in a base64 payload: length×3/4 minus the padding. */
static size_t b64_bytes(const jstr_t *s) {
  size_t pad = s->last == '=' ? (s->last2 == '=' ? 2 : 1) : 0;
  size_t raw = s->chars / 4 * 3;
  return raw >= pad ? raw - pad : 0;
}

/* -- figures -------------------------------------------------------------------------------- */

typedef struct {
  double *v;
  size_t n, cap;
} vec_t;

static void vec_push(vec_t *x, double v) {
  if (x->n == x->cap) {
    x->cap = x->cap ? x->cap * 2 : 1024;
    x->v = realloc(x->v, x->cap * sizeof *x->v);
    if (!x->v) abort();
  }
  x->v[x->n++] = v;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* floor and ceil without libm (the build links nothing but libc) */
static double floor_(double x) {
  double t = (double)(long long)x;
  return t > x ? t - 1 : t;
}
static double ceil_(double x) { return -floor_(-x); }
static double r3(double x) { return floor_(x * 1000 + 0.5) / 1000; } /* Math.round(x*1000)/1000 */

#endif
