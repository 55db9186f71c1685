/*
 * loadgen: a single-threaded epoll load generator for the typedserve benchmarks.
 *
 * Modes (all talk to 127.0.0.1 only):
 *   echo    --port P --conns N --size S --duration D
 *           N TCP connections; each sends S bytes, waits for S bytes back, repeats.
 *   connect --port P --workers W --duration D
 *           W outstanding connections; each connects, sends 64 B, reads 64 B, closes. Source
 *           addresses rotate over 127.0.1.1-250, so TIME_WAIT never exhausts the ports.
 *   udp     --port P --outstanding K --size S --duration D [--timeout-ms T]
 *           K outstanding datagrams of S bytes (S >= 16, tagged); a reply completes a
 *           request, no reply within T ms counts as loss and the slot is reissued.
 *   idle    --port P --conns N [--timeout T]
 *           Open N connections, print {"event":"connected",...}, wait for a line on stdin
 *           (at most T seconds), then send 64 B on each and count the correct replies.
 *
 * Every mode ends by itself and prints exactly one JSON result line on stdout:
 *   {"mode":..,"requests":..,"seconds":..,"rps":..,"errors":..,"loss":..,"p50_us":..,"p99_us":..}
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>
#include <signal.h>

#define MAX_EVENTS 512

/* ---------- time and latency histogram (log-linear, ~1.5% precision) ---------- */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define SUB_BITS 6
#define SUB (1u << SUB_BITS)
#define NBUCKETS (SUB * 40)
static uint64_t hist[NBUCKETS];
static uint64_t hist_count;

static unsigned bucket_of(uint64_t us) {
    if (us < SUB) return (unsigned)us;
    unsigned e = 63u - (unsigned)__builtin_clzll(us); /* e >= SUB_BITS */
    unsigned sub = (unsigned)((us >> (e - SUB_BITS)) & (SUB - 1));
    unsigned b = (e - SUB_BITS + 1) * SUB + sub;
    return b < NBUCKETS ? b : NBUCKETS - 1;
}

static double bucket_value(unsigned b) {
    if (b < SUB) return (double)b;
    unsigned e = b / SUB + SUB_BITS - 1;
    unsigned sub = b % SUB;
    double lo = (double)((1ull << e) + ((uint64_t)sub << (e - SUB_BITS)));
    double width = (double)(1ull << (e - SUB_BITS));
    return lo + width / 2.0;
}

static void record_latency(uint64_t start_ns, uint64_t end_ns) {
    uint64_t us = (end_ns - start_ns) / 1000u;
    hist[bucket_of(us)]++;
    hist_count++;
}

static double percentile(double p) {
    if (hist_count == 0) return -1.0;
    uint64_t rank = (uint64_t)(p * (double)(hist_count - 1)) + 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < NBUCKETS; b++) {
        seen += hist[b];
        if (seen >= rank) return bucket_value(b);
    }
    return bucket_value(NBUCKETS - 1);
}

/* ---------- helpers ---------- */

static void die(const char *what) {
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static struct sockaddr_in server_addr(int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* 127.0.0.1, never anything else */
    return a;
}

/* Start a non-blocking TCP connect; returns the fd or -1 (errno set). */
static int tcp_connect_start(const struct sockaddr_in *a) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)a, sizeof *a) < 0 && errno != EINPROGRESS) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static int socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
    return err;
}

static void print_result(const char *mode, uint64_t requests, double seconds, uint64_t errors,
                         uint64_t loss, const char *extra) {
    double rps = seconds > 0 ? (double)requests / seconds : 0.0;
    printf("{\"mode\":\"%s\",\"requests\":%llu,\"seconds\":%.6f,\"rps\":%.1f,\"errors\":%llu,"
           "\"loss\":%llu,\"p50_us\":%.1f,\"p99_us\":%.1f%s}\n",
           mode, (unsigned long long)requests, seconds, rps, (unsigned long long)errors,
           (unsigned long long)loss, percentile(0.50), percentile(0.99), extra ? extra : "");
    fflush(stdout);
}

/* ---------- echo ping-pong ---------- */

struct econn {
    int fd;
    int alive;
    size_t sent;
    size_t recvd;
    uint64_t t0;
};

static unsigned char *payload;
static unsigned char *sink;

static int echo_drive(struct econn *c, size_t size, int counting, uint64_t *requests,
                      uint64_t stop_at) {
    /* Make as much progress as possible without blocking. Returns -1 on a dead connection. */
    for (int guard = 0; guard < 1024; guard++) {
        int progressed = 0;
        if (c->sent < size) {
            ssize_t n = send(c->fd, payload + c->sent, size - c->sent, MSG_NOSIGNAL);
            if (n > 0) {
                c->sent += (size_t)n;
                progressed = 1;
            } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                return -1;
            }
        }
        if (c->recvd < c->sent) {
            ssize_t n = recv(c->fd, sink, size - c->recvd, 0);
            if (n > 0) {
                c->recvd += (size_t)n;
                progressed = 1;
                if (c->recvd == size) {
                    uint64_t t = now_ns();
                    if (counting) {
                        (*requests)++;
                        record_latency(c->t0, t);
                    }
                    c->sent = 0;
                    c->recvd = 0;
                    c->t0 = t;
                    if (t >= stop_at) return 0; /* do not start a new round after the end */
                }
            } else if (n == 0) {
                return -1;
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                return -1;
            }
        }
        if (!progressed) return 0;
    }
    return 0;
}

static int lines; /* --lines 1: each echo message ends with a newline */

static int mode_echo(int port, int conns, size_t size, double duration) {
    struct sockaddr_in a = server_addr(port);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    payload = malloc(size);
    sink = malloc(size);
    struct econn *cs = calloc((size_t)conns, sizeof *cs);
    if (!payload || !sink || !cs) die("malloc");
    memset(payload, 'x', size);
    if (lines) payload[size - 1] = '\n'; /* one line per message, for line-echo servers */
    uint64_t errors = 0, requests = 0;

    /* Connect everything first (blocking-ish: poll each connect up to 5 s). */
    for (int i = 0; i < conns; i++) {
        cs[i].fd = tcp_connect_start(&a);
        if (cs[i].fd < 0) {
            errors++;
            continue;
        }
        struct pollfd p = {.fd = cs[i].fd, .events = POLLOUT};
        if (poll(&p, 1, 5000) != 1 || socket_error(cs[i].fd) != 0) {
            close(cs[i].fd);
            cs[i].fd = -1;
            errors++;
            continue;
        }
        cs[i].alive = 1;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = &cs[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0) die("epoll_ctl");
    }

    uint64_t start = now_ns();
    uint64_t stop_at = start + (uint64_t)(duration * 1e9);
    int alive = 0;
    for (int i = 0; i < conns; i++) {
        if (!cs[i].alive) continue;
        alive++;
        cs[i].t0 = start;
        if (echo_drive(&cs[i], size, 1, &requests, stop_at) < 0) {
            cs[i].alive = 0;
            alive--;
            errors++;
            close(cs[i].fd);
        }
    }
    struct epoll_event evs[MAX_EVENTS];
    uint64_t now = now_ns();
    while (alive > 0 && now < stop_at) {
        int timeout_ms = (int)((stop_at - now) / 1000000u) + 1;
        if (timeout_ms > 100) timeout_ms = 100;
        int n = epoll_wait(ep, evs, MAX_EVENTS, timeout_ms);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct econn *c = evs[i].data.ptr;
            if (!c->alive) continue;
            if (echo_drive(c, size, 1, &requests, stop_at) < 0) {
                c->alive = 0;
                alive--;
                errors++;
                close(c->fd);
            }
        }
        now = now_ns();
    }
    double seconds = (double)(now_ns() - start) / 1e9;
    for (int i = 0; i < conns; i++)
        if (cs[i].alive) close(cs[i].fd);
    close(ep);
    print_result("echo", requests, seconds, errors, 0, NULL);
    return 0;
}

/* ---------- new-connection rate ---------- */

/* The generator closes first, so every connection leaves a TIME_WAIT socket on its side. With
 * one source address those exhaust the ephemeral port range (about 28k ports) within a second
 * and connect() then searches it on every call: the generator, not the server, sets the rate.
 * Spread over SOURCES loopback source addresses (127.0.1.1 ..), bound with
 * IP_BIND_ADDRESS_NO_PORT so the port is still picked at connect() time, the 4-tuples do not
 * collide. */
#define SOURCES 250
#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static int tcp_connect_from(const struct sockaddr_in *a, unsigned source) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src;
    memset(&src, 0, sizeof src);
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7F000101u + source % SOURCES); /* 127.0.1.1 + n */
    if (bind(fd, (const struct sockaddr *)&src, sizeof src) < 0 ||
        (connect(fd, (const struct sockaddr *)a, sizeof *a) < 0 && errno != EINPROGRESS)) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

enum { C_CONNECTING, C_SENDING, C_READING };

struct cconn {
    int fd;
    int state;
    size_t sent;
    size_t recvd;
    uint64_t t0;
};

#define CONNECT_MSG 64

static unsigned next_source;

static int connect_open(struct cconn *c, const struct sockaddr_in *a, int ep) {
    c->fd = tcp_connect_from(a, next_source++);
    if (c->fd < 0) return -1;
    c->state = C_CONNECTING;
    c->sent = 0;
    c->recvd = 0;
    c->t0 = now_ns();
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
    return 0;
}

/* Returns 1 when the exchange completed, 0 when it should wait, -1 on error. */
static int connect_drive(struct cconn *c) {
    static unsigned char msg[CONNECT_MSG];
    static unsigned char buf[CONNECT_MSG];
    if (c->state == C_CONNECTING) {
        int err = socket_error(c->fd);
        if (err == EINPROGRESS) return 0;
        if (err != 0) return -1;
        /* EPOLLOUT without an error means the handshake completed. */
        c->state = C_SENDING;
    }
    if (c->state == C_SENDING) {
        if (c->sent == 0) memset(msg, 'c', sizeof msg);
        ssize_t n = send(c->fd, msg + c->sent, CONNECT_MSG - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN) return 0;
            return -1;
        }
        c->sent += (size_t)n;
        if (c->sent < CONNECT_MSG) return 0;
        c->state = C_READING;
    }
    for (;;) {
        ssize_t n = recv(c->fd, buf, CONNECT_MSG - c->recvd, 0);
        if (n > 0) {
            c->recvd += (size_t)n;
            if (c->recvd == CONNECT_MSG) return 1;
            continue;
        }
        if (n == 0) return -1;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        if (errno == EINTR) continue;
        return -1;
    }
}

static int mode_connect(int port, int workers, double duration) {
    struct sockaddr_in a = server_addr(port);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    struct cconn *cs = calloc((size_t)workers, sizeof *cs);
    if (!cs) die("calloc");
    uint64_t errors = 0, requests = 0;
    uint64_t start = now_ns();
    uint64_t stop_at = start + (uint64_t)(duration * 1e9);
    int active = 0;
    for (int i = 0; i < workers; i++) {
        if (connect_open(&cs[i], &a, ep) == 0)
            active++;
        else {
            cs[i].fd = -1;
            errors++;
        }
    }
    struct epoll_event evs[MAX_EVENTS];
    uint64_t now = now_ns();
    /* Slots whose connect() failed synchronously (e.g. EADDRNOTAVAIL) are retried each tick. */
    while (now < stop_at) {
        int timeout_ms = (int)((stop_at - now) / 1000000u) + 1;
        if (timeout_ms > 10) timeout_ms = 10;
        int n = epoll_wait(ep, evs, MAX_EVENTS, timeout_ms);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct cconn *c = evs[i].data.ptr;
            if (c->fd < 0) continue;
            int r = connect_drive(c);
            if (r == 0) continue;
            uint64_t t = now_ns();
            if (r > 0) {
                requests++;
                record_latency(c->t0, t);
            } else {
                errors++;
            }
            close(c->fd);
            c->fd = -1;
            active--;
            if (t < stop_at) {
                if (connect_open(c, &a, ep) == 0)
                    active++;
                else
                    errors++;
            }
        }
        now = now_ns();
        for (int i = 0; i < workers && now < stop_at; i++) {
            if (cs[i].fd >= 0) continue;
            if (connect_open(&cs[i], &a, ep) == 0)
                active++;
            else
                cs[i].fd = -1;
        }
    }
    double seconds = (double)(now_ns() - start) / 1e9;
    for (int i = 0; i < workers; i++)
        if (cs[i].fd >= 0) close(cs[i].fd);
    close(ep);
    (void)active;
    print_result("connect", requests, seconds, errors, 0, NULL);
    return 0;
}

/* ---------- UDP request/response ---------- */

struct uslot {
    uint64_t seq;
    uint64_t t0;
};

static int mode_udp(int port, int outstanding, size_t size, double duration, int timeout_ms) {
    if (size < 16) size = 16;
    struct sockaddr_in a = server_addr(port);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int big = 4 << 20;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    if (connect(fd, (const struct sockaddr *)&a, sizeof a) < 0) die("connect");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");

    struct uslot *slots = calloc((size_t)outstanding, sizeof *slots);
    unsigned char *out = malloc(size);
    unsigned char *in = malloc(size + 64);
    if (!slots || !out || !in) die("malloc");
    memset(out, 'u', size);
    uint64_t errors = 0, requests = 0, loss = 0, next_seq = 1;
    uint64_t timeout_ns = (uint64_t)timeout_ms * 1000000u;

    uint64_t start = now_ns();
    uint64_t stop_at = start + (uint64_t)(duration * 1e9);
#define UDP_SEND(i)                                                                    \
    do {                                                                               \
        uint64_t slot_ = (uint64_t)(i), seq_ = next_seq++;                             \
        memcpy(out, &slot_, 8);                                                        \
        memcpy(out + 8, &seq_, 8);                                                     \
        slots[i].seq = seq_;                                                           \
        slots[i].t0 = now_ns();                                                        \
        if (send(fd, out, size, 0) < 0 && errno != EAGAIN && errno != ECONNREFUSED)    \
            errors++;                                                                  \
    } while (0)
    for (int i = 0; i < outstanding; i++) UDP_SEND(i);

    struct epoll_event evs[4];
    uint64_t now = now_ns();
    uint64_t next_sweep = now + timeout_ns / 4 + 1;
    while (now < stop_at) {
        int wait_ms = (int)((stop_at - now) / 1000000u) + 1;
        if (wait_ms > 10) wait_ms = 10;
        int n = epoll_wait(ep, evs, 4, wait_ms);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int batch = 0; n > 0 && batch < 4096; batch++) {
            ssize_t r = recv(fd, in, size + 64, 0);
            if (r < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
                if (errno == ECONNREFUSED) {
                    errors++;
                    continue;
                }
                die("recv");
            }
            if ((size_t)r != size) {
                errors++;
                continue;
            }
            uint64_t slot, seq;
            memcpy(&slot, in, 8);
            memcpy(&seq, in + 8, 8);
            if (slot >= (uint64_t)outstanding || slots[slot].seq != seq) continue; /* late reply */
            uint64_t t = now_ns();
            requests++;
            record_latency(slots[slot].t0, t);
            if (t < stop_at) UDP_SEND(slot);
            else slots[slot].seq = 0;
        }
        now = now_ns();
        if (now >= next_sweep) {
            for (int i = 0; i < outstanding; i++) {
                if (slots[i].seq != 0 && now - slots[i].t0 > timeout_ns) {
                    loss++;
                    if (now < stop_at) UDP_SEND(i);
                    else slots[i].seq = 0;
                }
            }
            next_sweep = now + timeout_ns / 4 + 1;
        }
    }
#undef UDP_SEND
    double seconds = (double)(now_ns() - start) / 1e9;
    close(ep);
    close(fd);
    print_result("udp", requests, seconds, errors, loss, NULL);
    return 0;
}

/* ---------- idle connections ---------- */

static int mode_idle(int port, int conns, double timeout_s) {
    struct sockaddr_in a = server_addr(port);
    int *fds = malloc(sizeof(int) * (size_t)conns);
    int *state = calloc((size_t)conns, sizeof(int)); /* 0 dead, 1 connecting, 2 up, 3 answered */
    size_t *got = calloc((size_t)conns, sizeof(size_t));
    if (!fds || !state || !got) die("malloc");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    uint64_t errors = 0;
    uint64_t t_start = now_ns();
    uint64_t deadline = t_start + (uint64_t)(timeout_s * 1e9);

    /* Phase 1: connect with at most 128 handshakes in flight. */
    int opened = 0, pending = 0, up = 0;
    struct epoll_event evs[MAX_EVENTS];
    while ((opened < conns || pending > 0) && now_ns() < deadline) {
        while (opened < conns && pending < 128) {
            int fd = tcp_connect_start(&a);
            fds[opened] = fd;
            if (fd < 0) {
                errors++;
                state[opened++] = 0;
                continue;
            }
            state[opened] = 1;
            struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)opened};
            if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
            opened++;
            pending++;
        }
        int n = epoll_wait(ep, evs, MAX_EVENTS, 100);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            uint32_t k = evs[i].data.u32;
            if (state[k] != 1) continue;
            pending--;
            if (socket_error(fds[k]) != 0) {
                errors++;
                state[k] = 0;
                epoll_ctl(ep, EPOLL_CTL_DEL, fds[k], NULL);
                close(fds[k]);
                fds[k] = -1;
                continue;
            }
            state[k] = 2;
            up++;
            struct epoll_event ev = {.events = EPOLLIN, .data.u32 = k};
            if (epoll_ctl(ep, EPOLL_CTL_MOD, fds[k], &ev) < 0) die("epoll_ctl");
        }
    }
    for (int k = 0; k < opened; k++) {
        if (state[k] == 1) { /* handshake never completed */
            errors++;
            state[k] = 0;
            close(fds[k]);
            fds[k] = -1;
        }
    }
    double connect_s = (double)(now_ns() - t_start) / 1e9;
    printf("{\"event\":\"connected\",\"up\":%d,\"errors\":%llu,\"seconds\":%.3f}\n", up,
           (unsigned long long)errors, connect_s);
    fflush(stdout);

    /* Phase 2: hold until the controller writes a line on stdin (bounded by the timeout). */
    {
        struct pollfd p = {.fd = 0, .events = POLLIN};
        int wait_ms = (int)(timeout_s * 1000.0);
        if (poll(&p, 1, wait_ms) == 1) {
            char line[64];
            (void)!read(0, line, sizeof line);
        }
    }

    /* Phase 3: one 64 B message on each connection; count complete replies. */
    unsigned char msg[64], buf[64];
    memset(msg, 'i', sizeof msg);
    uint64_t t_send = now_ns();
    deadline = t_send + (uint64_t)(timeout_s * 1e9);
    int waiting = 0;
    for (int k = 0; k < opened; k++) {
        if (state[k] != 2) continue;
        if (send(fds[k], msg, sizeof msg, MSG_NOSIGNAL) != (ssize_t)sizeof msg) {
            errors++;
            state[k] = 0;
            continue;
        }
        waiting++;
    }
    uint64_t answered = 0;
    while (waiting > 0 && now_ns() < deadline) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, 100);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            uint32_t k = evs[i].data.u32;
            if (state[k] != 2) continue;
            ssize_t r = recv(fds[k], buf, sizeof buf - got[k], 0);
            if (r > 0) {
                got[k] += (size_t)r;
                if (got[k] == sizeof msg) {
                    state[k] = 3;
                    answered++;
                    waiting--;
                    record_latency(t_send, now_ns());
                }
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                state[k] = 0;
                errors++;
                waiting--;
            }
        }
    }
    errors += (uint64_t)waiting; /* never answered */
    double seconds = (double)(now_ns() - t_send) / 1e9;
    for (int k = 0; k < opened; k++)
        if (fds[k] >= 0) close(fds[k]);
    close(ep);
    char extra[128];
    snprintf(extra, sizeof extra, ",\"conns\":%d,\"up\":%d,\"connect_seconds\":%.3f", conns, up,
             connect_s);
    print_result("idle", answered, seconds, errors, 0, extra);
    return 0;
}

/* ---------- main ---------- */

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen echo|connect|udp|idle --port P [--conns N] [--size S] "
            "[--workers W] [--outstanding K] [--duration D] [--timeout-ms T] [--timeout S] "
            "[--lines 1]\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    const char *mode = argv[1];
    int port = 0, conns = 1, workers = 20, outstanding = 20, timeout_ms = 200;
    size_t size = 64;
    double duration = 2.0, timeout_s = 60.0;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--port")) port = atoi(v);
        else if (!strcmp(k, "--conns")) conns = atoi(v);
        else if (!strcmp(k, "--size")) size = (size_t)atol(v);
        else if (!strcmp(k, "--workers")) workers = atoi(v);
        else if (!strcmp(k, "--outstanding")) outstanding = atoi(v);
        else if (!strcmp(k, "--duration")) duration = atof(v);
        else if (!strcmp(k, "--timeout-ms")) timeout_ms = atoi(v);
        else if (!strcmp(k, "--timeout")) timeout_s = atof(v);
        else if (!strcmp(k, "--lines")) lines = atoi(v) != 0;
        else usage();
    }
    if (port <= 0 || port > 65535 || conns < 1 || workers < 1 || outstanding < 1 || size < 1 ||
        duration <= 0 || duration > 3600 || timeout_ms < 1 || timeout_s <= 0)
        usage();
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    if (!strcmp(mode, "echo")) return mode_echo(port, conns, size, duration);
    if (!strcmp(mode, "connect")) return mode_connect(port, workers, duration);
    if (!strcmp(mode, "udp")) return mode_udp(port, outstanding, size, duration, timeout_ms);
    if (!strcmp(mode, "idle")) return mode_idle(port, conns, timeout_s);
    usage();
    return 2;
}
