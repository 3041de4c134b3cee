/*
 * loadgen: an epoll load generator for the camrelay benchmarks, in C so that the client side is
 * never the bottleneck. One thread, non-blocking sockets, loopback only.
 *
 *   loadgen --mode raw   --port P [--host 127.0.0.1] --conns N --duration S [--warmup S] [--timeout S] [--src K]
 *       N connections in a loop: connect, read to EOF, check the bytes are a whole JPEG (FF D8 .. FF D9),
 *       close, reconnect. Latency = connect() to EOF.
 *   loadgen --mode mjpeg --port P [--host ...] --conns N --duration S [--warmup S] [--path /stream.mjpg]
 *           [--stall F] [--ramp K]
 *       N viewers of a multipart MJPEG stream. A fraction F of them send the request and never read.
 *       Each JPEG carries the fake camera's COM tag "camrelay-fake-camera seq=<n> t=<unix us>";
 *       delivery latency = arrival of the frame's EOI - t (the camera's clock; same host).
 *
 * Only completions inside [warmup, warmup + duration) are counted. Prints one JSON object on stdout;
 * "cpu" is the load generator's own CPU time per second of run (1.0 = one core), to show it was not
 * the bottleneck.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { MODE_RAW, MODE_MJPEG };
enum { ST_IDLE, ST_CONNECTING, ST_READING, ST_STALLED };

static const char TAG[] = "camrelay-fake-camera seq=";
#define TAG_LEN (sizeof(TAG) - 1)

typedef struct {
  int fd;
  int state;
  int64_t t_start;   /* monotonic ns at connect() */
  uint64_t nbytes;
  uint8_t first[3];
  uint8_t last[2];
  /* mjpeg parser */
  int ps;            /* 0 status line, 1 search tag, 2 seq digits, 3 expect " t=", 4 t digits, 5 search EOI */
  int ti;            /* index into TAG / " t=" */
  uint64_t seq, tus;
  int prev_ff;
  uint64_t frames;
  int stall;
  int http_ok;
} conn_t;

typedef struct {
  uint32_t *v;
  size_t n, cap;
} lat_t;

static void lat_add(lat_t *l, uint32_t us) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 65536;
    l->v = realloc(l->v, l->cap * sizeof(uint32_t));
    if (!l->v) { perror("realloc"); exit(1); }
  }
  l->v[l->n++] = us;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static double pct(lat_t *l, double p) {
  if (l->n == 0) return -1;
  size_t i = (size_t)(p * (double)(l->n - 1) + 0.5);
  return l->v[i] / 1000.0;
}

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t real_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

/* options */
static int mode = MODE_RAW;
static const char *host = "127.0.0.1";
static int port = 0, nconns = 1, src_count = 1, ramp = 200;
static double duration = 5, warmup = 1, timeout_s = 30, stall_frac = 0;
static const char *path = "/stream.mjpg";

/* state */
static int ep;
static conn_t *conns;
static int64_t t0, win_start, win_end;
static lat_t lat;
static uint64_t frames, bad, errors, timeouts, bytes, connects, http_errors, disconnects;
static char request[512];
static int request_len;

static int in_window(int64_t t) { return t >= win_start && t < win_end; }

static void conn_close(conn_t *c) {
  if (c->fd >= 0) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
  }
  c->fd = -1;
  c->state = ST_IDLE;
}

static int conn_start(int idx) {
  conn_t *c = &conns[idx];
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { errors++; return -1; }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (src_count > 1) {
    struct sockaddr_in src = {0};
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7f000001 + (uint32_t)(idx % src_count));
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) { close(fd); errors++; return -1; }
  }
  if (c->stall) {
    /* a viewer that stops reading: a tiny receive window makes the sender feel it within a frame,
       instead of after megabytes of kernel buffers */
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  }
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  inet_pton(AF_INET, host, &sa.sin_addr);
  c->t_start = mono_ns();
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
    close(fd);
    errors++;
    return -1;
  }
  c->fd = fd;
  c->state = ST_CONNECTING;
  c->nbytes = 0;
  c->ps = 0;
  c->ti = 0;
  c->prev_ff = 0;
  c->http_ok = 0;
  connects++;
  struct epoll_event ev = {0};
  ev.events = mode == MODE_MJPEG ? (EPOLLOUT | EPOLLIN) : EPOLLIN;
  ev.data.u32 = (uint32_t)idx;
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  return 0;
}

/* Feeds received bytes through the MJPEG parser; records a latency per complete tagged frame. */
static void mjpeg_feed(conn_t *c, const uint8_t *p, size_t n, int64_t now) {
  for (size_t i = 0; i < n; i++) {
    uint8_t b = p[i];
    switch (c->ps) {
      case 0: /* "HTTP/1.x 200" */
        if (c->nbytes + i == 9) c->http_ok = (b == '2');
        if (c->nbytes + i >= 12) {
          if (!c->http_ok) { http_errors++; c->ps = 99; }
          else c->ps = 1;
        }
        break;
      case 1:
        if (b == (uint8_t)TAG[c->ti]) {
          if (++c->ti == (int)TAG_LEN) { c->ps = 2; c->seq = 0; c->ti = 0; }
        } else {
          c->ti = (b == (uint8_t)TAG[0]) ? 1 : 0;
        }
        break;
      case 2:
        if (b >= '0' && b <= '9') c->seq = c->seq * 10 + (b - '0');
        else if (b == ' ') { c->ps = 3; c->ti = 1; }
        else { c->ps = 1; c->ti = 0; }
        break;
      case 3: /* " t=" (space already consumed) */
        if (b == (uint8_t)" t="[c->ti]) {
          if (++c->ti == 3) { c->ps = 4; c->tus = 0; }
        } else { c->ps = 1; c->ti = 0; }
        break;
      case 4:
        if (b >= '0' && b <= '9') c->tus = c->tus * 10 + (b - '0');
        else { c->ps = 5; c->prev_ff = (b == 0xff); }
        break;
      case 5:
        if (!c->prev_ff && b != 0xff) {
          /* fast path: jump to the next 0xFF (the only byte that can start EOI) */
          const uint8_t *ff = memchr(p + i, 0xff, n - i);
          if (!ff) { i = n; break; }
          i = (size_t)(ff - p);
          b = 0xff;
        }
        if (c->prev_ff && b == 0xd9) {
          if (in_window(now)) {
            uint64_t r = real_us();
            uint64_t d = r > c->tus ? r - c->tus : 0;
            lat_add(&lat, d > 0xffffffffULL ? 0xffffffffU : (uint32_t)d);
            frames++;
            c->frames++;
          }
          c->ps = 1;
          c->ti = 0;
          c->prev_ff = 0;
        } else {
          c->prev_ff = (b == 0xff);
        }
        break;
      default:
        break;
    }
  }
}

static uint8_t rbuf[1 << 18];

static void on_event(int idx, uint32_t events) {
  conn_t *c = &conns[idx];
  if (c->fd < 0) return;
  int64_t now = mono_ns();
  if (mode == MODE_MJPEG && c->state == ST_CONNECTING && (events & EPOLLOUT)) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) { errors++; conn_close(c); return; }
    if (write(c->fd, request, (size_t)request_len) != request_len) { errors++; conn_close(c); return; }
    struct epoll_event ev = {0};
    ev.data.u32 = (uint32_t)idx;
    if (c->stall) {
      /* never read again: leave the socket open and out of epoll */
      epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
      c->state = ST_STALLED;
      return;
    }
    ev.events = EPOLLIN;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->state = ST_READING;
    return;
  }
  for (;;) {
    ssize_t r = read(c->fd, rbuf, sizeof rbuf);
    if (r > 0) {
      c->state = ST_READING;
      if (mode == MODE_RAW) {
        for (ssize_t i = 0; i < r && c->nbytes + (uint64_t)i < 3; i++) c->first[c->nbytes + (uint64_t)i] = rbuf[i];
        if (r >= 2) { c->last[0] = rbuf[r - 2]; c->last[1] = rbuf[r - 1]; }
        else { c->last[0] = c->last[1]; c->last[1] = rbuf[0]; }
      } else {
        mjpeg_feed(c, rbuf, (size_t)r, now);
      }
      c->nbytes += (uint64_t)r;
      if (in_window(now)) bytes += (uint64_t)r;
      continue;
    }
    if (r == 0) {
      if (mode == MODE_RAW) {
        int ok = c->nbytes >= 4 && c->first[0] == 0xff && c->first[1] == 0xd8 && c->first[2] == 0xff &&
                 c->last[0] == 0xff && c->last[1] == 0xd9;
        if (in_window(now)) {
          if (ok) {
            frames++;
            lat_add(&lat, (uint32_t)((now - c->t_start) / 1000));
          } else {
            bad++;
          }
        }
        conn_close(c);
        if (now < win_end) conn_start(idx);
      } else {
        disconnects++;
        conn_close(c);
      }
      return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    if (errno == EINTR) continue;
    if (in_window(now) || mode == MODE_MJPEG) errors++;
    conn_close(c);
    if (mode == MODE_RAW && now < win_end) conn_start(idx);
    return;
  }
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen --mode raw|mjpeg --port P [--host H] --conns N --duration S [--warmup S]\n"
          "               [--timeout S] [--src K] [--path /stream.mjpg] [--stall F] [--ramp K]\n");
  exit(2);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) usage();
    if (!strcmp(a, "--mode")) mode = !strcmp(v, "mjpeg") ? MODE_MJPEG : !strcmp(v, "raw") ? MODE_RAW : (usage(), 0);
    else if (!strcmp(a, "--host")) host = v;
    else if (!strcmp(a, "--port")) port = atoi(v);
    else if (!strcmp(a, "--conns")) nconns = atoi(v);
    else if (!strcmp(a, "--duration")) duration = atof(v);
    else if (!strcmp(a, "--warmup")) warmup = atof(v);
    else if (!strcmp(a, "--timeout")) timeout_s = atof(v);
    else if (!strcmp(a, "--src")) src_count = atoi(v);
    else if (!strcmp(a, "--path")) path = v;
    else if (!strcmp(a, "--stall")) stall_frac = atof(v);
    else if (!strcmp(a, "--ramp")) ramp = atoi(v);
    else usage();
    i++;
  }
  if (port <= 0 || nconns <= 0 || duration <= 0) usage();
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  request_len = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: camrelay-loadgen\r\n\r\n", path, host, port);

  ep = epoll_create1(EPOLL_CLOEXEC);
  conns = calloc((size_t)nconns, sizeof(conn_t));
  int nstall = (int)(stall_frac * nconns + 0.5);
  for (int i = 0; i < nconns; i++) {
    conns[i].fd = -1;
    /* exactly nstall stalled viewers, spread evenly */
    conns[i].stall = ((long)(i + 1) * nstall / nconns) != ((long)i * nstall / nconns);
  }
  t0 = mono_ns();
  win_start = t0 + (int64_t)(warmup * 1e9);
  win_end = win_start + (int64_t)(duration * 1e9);
  int started = 0;
  struct epoll_event evs[1024];
  int64_t timeout_ns = (int64_t)(timeout_s * 1e9);
  int64_t last_sweep = t0;
  while (1) {
    int64_t now = mono_ns();
    if (now >= win_end) break;
    /* ramp up: at most `ramp` new connections per loop turn */
    for (int k = 0; k < ramp && started < nconns; k++) conn_start(started++);
    int n = epoll_wait(ep, evs, 1024, started < nconns ? 5 : 50);
    for (int i = 0; i < n; i++) on_event((int)evs[i].data.u32, evs[i].events);
    now = mono_ns();
    if (mode == MODE_RAW && now - last_sweep > 50000000LL) {
      last_sweep = now;
      for (int i = 0; i < started; i++) {
        conn_t *c = &conns[i];
        if (c->fd >= 0 && now - c->t_start > timeout_ns) {
          if (in_window(now)) timeouts++;
          conn_close(c);
          conn_start(i);
        } else if (c->fd < 0 && now < win_end) {
          conn_start(i); /* a failed connect() above */
        }
      }
    }
  }
  int alive = 0, viewers_with_frames = 0, reading = 0;
  for (int i = 0; i < nconns; i++) {
    if (conns[i].fd >= 0) alive++;
    if (!conns[i].stall) reading++;
    if (conns[i].frames > 0) viewers_with_frames++;
    conn_close(&conns[i]);
  }
  qsort(lat.v, lat.n, sizeof(uint32_t), cmp_u32);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu_s = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
  double wall_s = (mono_ns() - t0) / 1e9;
  printf("{\"mode\":\"%s\",\"conns\":%d,\"duration_s\":%.3f,\"frames\":%llu,\"fps\":%.1f,\"bad\":%llu,\"errors\":%llu,"
         "\"timeouts\":%llu,\"bytes\":%llu,\"connects\":%llu,\"http_errors\":%llu,\"disconnects\":%llu,"
         "\"alive_at_end\":%d,\"reading\":%d,\"viewers_with_frames\":%d,"
         "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"cpu\":%.3f}\n",
         mode == MODE_RAW ? "raw" : "mjpeg", nconns, duration, (unsigned long long)frames, frames / duration,
         (unsigned long long)bad, (unsigned long long)errors, (unsigned long long)timeouts, (unsigned long long)bytes,
         (unsigned long long)connects, (unsigned long long)http_errors, (unsigned long long)disconnects, alive, reading,
         viewers_with_frames, pct(&lat, 0.5), pct(&lat, 0.9), pct(&lat, 0.99), lat.n ? lat.v[lat.n - 1] / 1000.0 : -1.0,
         wall_s > 0 ? cpu_s / wall_s : 0.0);
  return 0;
}
