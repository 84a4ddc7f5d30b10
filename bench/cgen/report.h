/* The C load generator's options, /proc sampling, JSON result and main (included once, at the
 * end of loadgen.c): the run's phases and the result's keys are loadgen.mjs's, in its order. */

/* -- options -------------------------------------------------------------------------------- */

static void usage_fail(const char *why, const char *what) {
  fprintf(stderr, "loadgen: %s%s\n", why, what ? what : "");
  exit(2);
}

static void parse_args(int argc, char **argv) {
  static const struct { const char *name; char kind; void *to; } names[] = {
      {"--url", 's', &opt.url}, {"--calls", 'l', &opt.calls}, {"--mode", 's', &opt.mode},
      {"--server-pid", 's', &opt.server_pid}, {"--ramp-rate", 'd', &opt.ramp_rate},
      {"--warmup-calls", 'l', &opt.warmup_calls}, {"--warmup-s", 'd', &opt.warmup_s},
      {"--settle-s", 'd', &opt.settle_s}, {"--window-s", 'd', &opt.window_s},
      {"--idle-tail-s", 'd', &opt.idle_tail_s}, {"--final-timeout-s", 'd', &opt.final_timeout_s},
      {"--ping-every", 'l', &opt.ping_every}, {"--barge-fraction", 'd', &opt.barge_fraction},
      {"--seed", 'l', &opt.seed}, {"--out", 's', &opt.out},
      /* --call-query 1: each stream URL names its call (?CallUUID=…), as callflow's do */
      {"--call-query", 'l', &opt.call_query},
  };
  for (int i = 1; i < argc; i += 2) {
    size_t k = 0;
    while (k < sizeof names / sizeof names[0] && strcmp(names[k].name, argv[i])) k++;
    if (k == sizeof names / sizeof names[0]) usage_fail("unknown option ", argv[i]);
    if (i + 1 >= argc) usage_fail("no value for ", argv[i]);
    const char *v = argv[i + 1];
    if (names[k].kind == 's') *(const char **)names[k].to = v;
    else if (names[k].kind == 'l') *(long *)names[k].to = (long)strtod(v, NULL);
    else *(double *)names[k].to = strtod(v, NULL);
  }
  if (!opt.url || !opt.calls) usage_fail("--url and --calls are required", NULL);
  if (strcmp(opt.mode, "ivr") && strcmp(opt.mode, "bare")) usage_fail("--mode is ivr or bare", NULL);
  if (opt.ping_every < 1) opt.ping_every = 1;
  g.ivr = !strcmp(opt.mode, "ivr");
  const char *u = opt.url;
  if (strncmp(u, "ws://", 5)) usage_fail("--url must be ws://HOST[:PORT]/PATH: ", u);
  u += 5;
  size_t hl = strcspn(u, ":/?");
  if (!hl || hl >= sizeof g.host) usage_fail("bad host in ", opt.url);
  memcpy(g.host, u, hl), g.host[hl] = 0, u += hl;
  g.port = 80;
  if (*u == ':') g.port = (int)strtol(u + 1, (char **)&u, 10);
  snprintf(g.path, sizeof g.path, "%s%s", *u == '/' ? "" : "/", u);
  char port[16];
  snprintf(port, sizeof port, "%d", g.port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  if (getaddrinfo(g.host, port, &hints, &ai)) usage_fail("cannot resolve ", g.host);
  memcpy(&g.addr, ai->ai_addr, ai->ai_addrlen), g.addrlen = ai->ai_addrlen;
  freeaddrinfo(ai);
}

/* -- /proc ---------------------------------------------------------------------------------- */

typedef struct { double cpu_s, rss_bytes; int ok; } sample_t;

static sample_t proc_sample(const char *pids) { /* one pid or several, comma-separated: summed */
  sample_t total = {0, 0, 1};
  char list[1024], path[64], text[4096];
  snprintf(list, sizeof list, "%s", pids);
  for (char *save = NULL, *pid = strtok_r(list, ",", &save); pid; pid = strtok_r(NULL, ",", &save)) {
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f) fclose(f);
    text[n] = 0;
    char *p = strrchr(text, ')');
    unsigned long long ut = 0, st = 0;
    if (p && sscanf(p + 2, "%*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &ut, &st) == 2)
      total.cpu_s += (double)(ut + st) / CLK_TCK;
    else
      total.ok = 0;
    snprintf(path, sizeof path, "/proc/%s/status", pid);
    if ((f = fopen(path, "r"))) {
      char line[256];
      while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) total.rss_bytes += strtod(line + 6, NULL) * 1024;
      fclose(f);
    }
  }
  return total;
}

static double machine_busy_s(void) {
  unsigned long long f[8] = {0};
  FILE *fp = fopen("/proc/stat", "r");
  if (!fp) return 0;
  int n = fscanf(fp, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &f[0], &f[1], &f[2], &f[3], &f[4],
                 &f[5], &f[6], &f[7]);
  fclose(fp);
  if (n < 4) return 0;
  unsigned long long sum = 0;
  for (int i = 0; i < 8; i++) sum += f[i];
  return (double)(sum - f[3] - f[4] - f[7]) / CLK_TCK;
}

static double self_cpu_s(int sys_only) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  return sys_only ? sys : sys + (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
}

/* -- the JSON result ------------------------------------------------------------------------ */

static void jnum(FILE *o, double x) { /* as JSON.stringify writes a value rounded to 3 places */
  char s[64];
  snprintf(s, sizeof s, "%.3f", r3(x));
  char *e = s + strlen(s);
  while (e[-1] == '0') *--e = 0;
  if (e[-1] == '.') *--e = 0;
  fputs(strcmp(s, "-0") ? s : "0", o);
}

static void jkey(FILE *o, const char *k) { fprintf(o, ",\n \"%s\": ", k); }

static void jperc(FILE *o, const char *k, vec_t *x) {
  jkey(o, k);
  if (!x->n) { fputs("{\"count\": 0, \"p50\": null, \"p90\": null, \"p99\": null, \"max\": null}", o); return; }
  for (size_t i = 0; i < x->n; i++) x->v[i] *= 1000; /* milliseconds */
  qsort(x->v, x->n, sizeof(double), cmp_double);
  double q[3] = {0.5, 0.9, 0.99};
  fprintf(o, "{\"count\": %zu", x->n);
  for (int i = 0; i < 3; i++) {
    long r = (long)ceil_(q[i] * (double)x->n) - 1;
    r = r < 0 ? 0 : r > (long)x->n - 1 ? (long)x->n - 1 : r;
    fprintf(o, ", \"p%d\": ", i == 0 ? 50 : i == 1 ? 90 : 99);
    jnum(o, x->v[r]);
  }
  fputs(", \"max\": ", o);
  jnum(o, x->v[x->n - 1]);
  fputs("}", o);
}

/* -- main ----------------------------------------------------------------------------------- */

static int selftest(void);

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "--selftest")) return selftest();
  parse_args(argc, argv);
  struct rlimit rl;
  if (!getrlimit(RLIMIT_NOFILE, &rl)) rl.rlim_cur = rl.rlim_max, setrlimit(RLIMIT_NOFILE, &rl);
  g.rng = (uint32_t)opt.seed;
  g.keys_enabled = 1;
  g.window_start = g.window_end = 1e300;
  g.ep = epoll_create1(EPOLL_CLOEXEC);
  g.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  struct epoll_event tev = {.events = EPOLLIN, .data.ptr = &timer_tag};
  epoll_ctl(g.ep, EPOLL_CTL_ADD, g.tfd, &tev);
  const char *server = opt.server_pid;
  int has_server = server[0] != 0;
  double cpu_self0 = self_cpu_s(0);
  g.t0 = now(), g.j = 0, g.armed = -1;

  ramp(opt.warmup_calls, 50, 0); /* the warm-up: unmeasured calls, then hung up */
  batch_waiting = 0;
  loop_until(now() + 10, batch_done);
  sleep_s(opt.warmup_s);
  hang_up_all(g.calls, g.ncalls, 5);
  g.ncalls = 0;
  sleep_s(0.5);
  sample_t base = has_server ? proc_sample(server) : (sample_t){0, 0, 0};
  double ramp_began = now();
  ramp(opt.calls, opt.ramp_rate, 1);
  batch_waiting = 1;
  int ramp_ok = loop_until(now() + 15, batch_done);
  double ramp_s = now() - ramp_began;
  sleep_s(opt.settle_s);
  g.window_start = now();
  sample_t cpu0 = has_server ? proc_sample(server) : base;
  double self0 = self_cpu_s(0), sys0 = self_cpu_s(1), busy0 = machine_busy_s();
  sleep_s(opt.window_s);
  g.window_end = now();
  sample_t cpu1 = has_server ? proc_sample(server) : base;
  double self1 = self_cpu_s(0), sys1 = self_cpu_s(1), busy1 = machine_busy_s();

  call_t **live = malloc((g.ncalls + 1) * sizeof *live);
  size_t nlive = 0;
  for (size_t i = 0; i < g.ncalls; i++) if (!g.calls[i]->closed) live[nlive++] = g.calls[i];
  g.keys_enabled = 0;
  wait_set = live, wait_n = nlive;
  loop_until(now() + 5, all_key_done);
  long unanswered_keys = 0;
  for (size_t i = 0; i < nlive; i++) {
    call_t *c = live[i];
    if ((c->state == BARGED || c->state == PRESSED) && in_window(c->key_sent)) unanswered_keys++;
  }
  sample_t idle = {0, 0, 0};
  if (opt.idle_tail_s > 0) {
    sleep_s(opt.idle_tail_s);
    if (has_server) idle = proc_sample(server);
  }
  size_t nopen = 0;
  for (size_t i = 0; i < g.ncalls; i++) if (!g.calls[i]->closed) live[nopen++] = g.calls[i];
  for (size_t i = 0; i < nopen; i++) send_final_ping(live[i]);
  wait_set = live, wait_n = nopen;
  loop_until(now() + opt.final_timeout_s, all_final_pong);
  long unread = 0, unanswered_pings = 0;
  for (size_t i = 0; i < nopen; i++) {
    call_t *c = live[i];
    if (c->ping_sent[c->final_ping - 1] >= 0) unread++;
    for (long p = 1; p < c->ping_id + 1; p++)
      if (p != c->final_ping && c->ping_sent[p - 1] >= 0 && in_window(c->ping_sent[p - 1])) unanswered_pings++;
  }
  size_t streaming = g.ncalls;
  long stuck = hang_up_all(g.calls, g.ncalls, 5);
  double cpu_self1 = self_cpu_s(0);

  FILE *o = strcmp(opt.out, "-") ? fopen(opt.out, "w") : stdout;
  if (!o) { perror(opt.out); return 1; }
  double window = g.window_end - g.window_start, gen_cpu = self1 - self0;
  double server_cpu = has_server ? cpu1.cpu_s - cpu0.cpu_s : 0;
  fprintf(o, "{\n \"calls\": %ld,\n \"mode\": \"%s\",\n \"url\": \"", opt.calls, opt.mode);
  for (const char *u = opt.url; *u; u++) fprintf(o, *u == '"' || *u == '\\' ? "\\%c" : "%c", *u);
  fputs("\",\n \"generator\": \"c\"", o);
  jkey(o, "ramp_s"), jnum(o, ramp_s);
  jkey(o, "ramp_complete"), fputs(ramp_ok ? "true" : "false", o);
  jkey(o, "live_calls_at_window_end"), fprintf(o, "%zu", nlive);
  jkey(o, "window_s"), jnum(o, window);
  jkey(o, "errors"), fputs("{", o);
  for (int i = 0; i < g.nerr; i++) fprintf(o, "%s\"%s\": %ld", i ? ", " : "", g.err_name[i], g.err_count[i]);
  fputs("}", o);
  jkey(o, "calls_streaming"), fprintf(o, "%zu", streaming);
  jkey(o, "unread_at_end"), fprintf(o, "%ld", unread);
  jkey(o, "unanswered_pings"), fprintf(o, "%ld", unanswered_pings);
  jkey(o, "unanswered_keys"), fprintf(o, "%ld", unanswered_keys);
  jkey(o, "not_closed"), fprintf(o, "%ld", stuck);
  jkey(o, "media_sent"), fprintf(o, "%ld", g.media_sent);
  jkey(o, "blocked_sends"), fprintf(o, "%ld", g.blocked_sends);
  vec_t lag = {0};
  for (size_t i = 0; i < g.ping_lag.n; i++) vec_push(&lag, g.ping_lag.v[i]);
  for (size_t i = 0; i < g.key_lag.n; i++) vec_push(&lag, g.key_lag.v[i]);
  jperc(o, "ping_lag_ms", &g.ping_lag), jperc(o, "key_lag_ms", &g.key_lag), jperc(o, "lag_ms", &lag);
  jperc(o, "barge_in_ms", &g.barge), jperc(o, "key_to_audio_ms", &g.key_to_audio);
  jperc(o, "ttfa_ms", &g.ttfa), jperc(o, "handshake_ms", &g.handshake);
  jperc(o, "pacer_late_ms", &g.pacer_late);
  jkey(o, "generator_cpu_window_s"), jnum(o, gen_cpu);
  jkey(o, "generator_sys_cpu_window_s"), jnum(o, sys1 - sys0);
  jkey(o, "other_cpu_window_s"), jnum(o, busy1 - busy0 - gen_cpu - server_cpu);
  jkey(o, "generator_cpu_total_s"), jnum(o, cpu_self1 - cpu_self0);
  if (has_server) {
    jkey(o, "server");
    fputs("{\"cpu_window_s\": ", o), jnum(o, server_cpu);
    fprintf(o, ", \"rss_base_bytes\": %.0f, \"rss_window_start_bytes\": %.0f", base.rss_bytes, cpu0.rss_bytes);
    fprintf(o, ", \"rss_window_end_bytes\": %.0f, \"rss_idle_bytes\": ", cpu1.rss_bytes);
    if (opt.idle_tail_s > 0) fprintf(o, "%.0f}", idle.rss_bytes);
    else fputs("null}", o);
  }
  fputs("\n}\n", o);
  if (o != stdout) fclose(o);
  return 0;
}

/* -- --selftest: the JSON reading, frame headers, SHA-1 ------------------------------------- */

static int check(int ok, const char *what) {
  if (!ok) fprintf(stderr, "selftest FAILED: %s\n", what);
  return !ok;
}

static int selftest(void) {
  int bad = 0;
  command_t c;
  const char *play = " { \"media\" : {\"payload\":\"AAAA//8=\", \"sampleRate\": 8000,"
                     " \"contentType\":\"audio/x-mulaw\"}, \"streamId\":\"s\",\n\"event\":\"playAudio\" } ";
  bad += check(!parse_command(play, strlen(play), &c) && jstr_is(&c.event, "playAudio"), "playAudio event");
  bad += check(jstr_is(&c.content_type, "audio/x-mulaw") && c.has_sample_rate && c.sample_rate == 8000, "media");
  bad += check(b64_bytes(&c.payload) == 5, "payload bytes (AAAA//8= is 5)");
  const char *cp = "{\"name\":\"a\\\"b\\u00e9\",\"x\":[1,{\"event\":\"no\"},-2.5e3,null],\"event\":\"checkpoint\"}";
  bad += check(!parse_command(cp, strlen(cp), &c) && jstr_is(&c.event, "checkpoint"), "checkpoint event");
  bad += check(c.name.raw_len == 10 && !memcmp(c.name.raw, "a\\\"b\\u00e9", 10), "name kept escaped");
  const char *nested = "{\"media\":{\"event\":\"playAudio\"},\"event\":\"clearAudio\"}";
  bad += check(!parse_command(nested, strlen(nested), &c) && jstr_is(&c.event, "clearAudio"), "nested event");
  const char *broken[] = {"{\"event\":\"x\"", "{\"event\" \"x\"}", "{\"event\":\"x\",}", "nope", "{\"a\":01}"};
  for (size_t i = 0; i < 5; i++) bad += check(parse_command(broken[i], strlen(broken[i]), &c) < 0, broken[i]);
  const char *noevent = "[1, 2]";
  bad += check(!parse_command(noevent, strlen(noevent), &c) && !c.event.present, "no event");
  unsigned char d[20];
  char out[40];
  const char *key = "dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; /* RFC 6455 §1.3 */
  sha1((const unsigned char *)key, strlen(key), d);
  base64(d, 20, out);
  bad += check(!strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "Sec-WebSocket-Accept");
  unsigned char h[14];
  bad += check(frame_head(h, 1, 300) == 8 && h[0] == 0x81 && h[1] == 0xfe && h[2] == 1 && h[3] == 44, "head 300");
  bad += check(frame_head(h, 9, 8) == 6 && h[1] == 0x88, "head 8");
  bad += check(frame_head(h, 2, 70000) == 14 && h[1] == 0xff && h[7] == 1, "head 70000");
  if (!bad) puts("selftest ok");
  return bad ? 1 : 0;
}
