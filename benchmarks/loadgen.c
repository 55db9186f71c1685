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
 * TLS (echo and connect modes): --tls CAFILE (trust CAFILE, check the name "localhost", sent
 * as SNI) or --tls none (no verification). OpenSSL's defaults otherwise (TLS 1.3 negotiated
 * with every server here); no session cache and no tickets kept, so every connection does a
 * full handshake. Handshakes are non-blocking, in the same epoll loop (SSL_do_handshake until
 * it stops asking for WANT_READ/WANT_WRITE).
 *   echo --tls: the handshakes run before the clock starts, all at once in the loop, until
 *           every connection finished or none progressed for 300 ms (a bounded server leaves
 *           the rest in its backlog, as in plain echo); unfinished ones go on in the timed loop.
 *   connect --tls: connect, handshake, send 64 B, read 64 B, close_notify, close.
 *   connect --half-open N (with or without --tls): first open N plain TCP connections that
 *           send nothing (no ClientHello) and hold them until the end; the clock starts
 *           100 ms after they are connected. The result says how many were still open.
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
#ifndef LOADGEN_NO_TLS /* run.py builds with -lssl -lcrypto, or with this defined if that fails */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#endif

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

/* ---------- TLS (OpenSSL): a thin layer with send()/recv() semantics ---------- */

#ifndef LOADGEN_NO_TLS

static SSL_CTX *tls_ctx; /* NULL: plain TCP */
static char tls_used[96]; /* version/cipher of the first completed handshake */
static uint64_t tls_resumed; /* handshakes that resumed a session (must stay 0) */

static void tls_die(const char *what) {
    fprintf(stderr, "loadgen: %s: ", what);
    ERR_print_errors_fp(stderr);
    fprintf(stderr, "\n");
    exit(2);
}

/* --tls none: no verification; --tls CAFILE: trust CAFILE and check the name "localhost". */
static void tls_setup(const char *arg) {
    tls_ctx = SSL_CTX_new(TLS_client_method());
    if (!tls_ctx) tls_die("SSL_CTX_new");
    /* No resumption: no client session cache, no ticket asked for (TLS 1.2), no session ever
     * set on a connection; every handshake is a full one (tls_resumed counts any that is not). */
    SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(tls_ctx, SSL_OP_NO_TICKET);
    /* send()/recv() semantics: partial writes, and a retried write may come from a new pointer */
    SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (strcmp(arg, "none") == 0) {
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
        return;
    }
    if (SSL_CTX_load_verify_locations(tls_ctx, arg, NULL) != 1) tls_die(arg);
    SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(tls_ctx);
    if (X509_VERIFY_PARAM_set1_host(param, "localhost", 0) != 1) tls_die("set1_host");
}

static SSL *tls_new(int fd) {
    SSL *ssl = SSL_new(tls_ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1) tls_die("SSL_new");
    if (SSL_set_tlsext_host_name(ssl, "localhost") != 1) tls_die("SNI");
    SSL_set_connect_state(ssl);
    return ssl;
}

/* errno from an SSL result: EAGAIN when it waits for the socket, else ECONNRESET. */
static int tls_wait_or_fail(SSL *ssl, int r) {
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return 0;
    }
    ERR_clear_error();
    errno = ECONNRESET;
    return -1;
}

/* 1: handshake done, 0: waiting for the socket, -1: failed. */
static int tls_handshake(SSL *ssl) {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    if (r == 1) {
        if (SSL_session_reused(ssl)) tls_resumed++;
        if (!tls_used[0])
            snprintf(tls_used, sizeof tls_used, "%s %s", SSL_get_version(ssl),
                     SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
        return 1;
    }
    return tls_wait_or_fail(ssl, r) == 0 ? 0 : -1;
}

static ssize_t tls_send(SSL *ssl, const void *buf, size_t len) {
    ERR_clear_error();
    int n = SSL_write(ssl, buf, (int)len);
    if (n > 0) return n;
    (void)tls_wait_or_fail(ssl, n);
    return -1;
}

/* As recv(): > 0 bytes, 0 at the end (close_notify, or a TCP end without it), -1 with errno. */
static ssize_t tls_recv(SSL *ssl, void *buf, size_t len) {
    ERR_clear_error();
    int n = SSL_read(ssl, buf, (int)len);
    if (n > 0) return n;
    int e = SSL_get_error(ssl, n);
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    if (e == SSL_ERROR_SSL &&
        ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ERR_clear_error();
        return 0;
    }
    (void)tls_wait_or_fail(ssl, n);
    return -1;
}

/* Send close_notify without waiting for the peer's, then free (the caller closes the fd). */
static void tls_free(SSL *ssl, int notify) {
    if (!ssl) return;
    if (notify) {
        ERR_clear_error();
        (void)SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    ERR_clear_error();
}

#else /* built without OpenSSL: --tls is refused, the rest is unreachable */

typedef struct loadgen_no_ssl SSL;
static void *tls_ctx;
static char tls_used[1];
static uint64_t tls_resumed;
static void tls_setup(const char *arg) {
    (void)arg;
    fprintf(stderr, "loadgen: built without OpenSSL (LOADGEN_NO_TLS): --tls is unavailable\n");
    exit(2);
}
static SSL *tls_new(int fd) { (void)fd; abort(); }
static int tls_handshake(SSL *ssl) { (void)ssl; abort(); }
static ssize_t tls_send(SSL *ssl, const void *buf, size_t len) {
    (void)ssl, (void)buf, (void)len;
    abort();
}
static ssize_t tls_recv(SSL *ssl, void *buf, size_t len) {
    (void)ssl, (void)buf, (void)len;
    abort();
}
static void tls_free(SSL *ssl, int notify) { (void)ssl, (void)notify; }

#endif

/* send()/recv() on a connection, through TLS when it has an SSL. */
static ssize_t conn_send(int fd, SSL *ssl, const void *buf, size_t len) {
    return ssl ? tls_send(ssl, buf, len) : send(fd, buf, len, MSG_NOSIGNAL);
}

static ssize_t conn_recv(int fd, SSL *ssl, void *buf, size_t len) {
    return ssl ? tls_recv(ssl, buf, len) : recv(fd, buf, len, 0);
}

/* The TLS fields of a result line (empty without --tls). */
static const char *tls_extra(void) {
    static char extra[160];
    if (!tls_ctx) return "";
    snprintf(extra, sizeof extra, ",\"tls\":\"%s\",\"resumed\":%llu", tls_used,
             (unsigned long long)tls_resumed);
    return extra;
}

/* ---------- echo ping-pong ---------- */

struct econn {
    int fd;
    int alive;
    SSL *ssl;        /* --tls */
    int handshaking; /* --tls: the handshake is not done yet */
    size_t sent;
    size_t recvd;
    uint64_t t0;
};

static unsigned char *payload;
static unsigned char *sink;

static int echo_drive(struct econn *c, size_t size, int counting, uint64_t *requests,
                      uint64_t stop_at) {
    /* Make as much progress as possible without blocking. Returns -1 on a dead connection. */
    if (c->handshaking) {
        int r = tls_handshake(c->ssl);
        if (r <= 0) return r;
        c->handshaking = 0;
        c->t0 = now_ns(); /* the first request starts when the handshake is done */
    }
    for (int guard = 0; guard < 1024; guard++) {
        int progressed = 0;
        if (c->sent < size) {
            ssize_t n = conn_send(c->fd, c->ssl, payload + c->sent, size - c->sent);
            if (n > 0) {
                c->sent += (size_t)n;
                progressed = 1;
            } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                return -1;
            }
        }
        if (c->recvd < c->sent) {
            ssize_t n = conn_recv(c->fd, c->ssl, sink, size - c->recvd);
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

static void echo_close(struct econn *c) {
    tls_free(c->ssl, 0);
    c->ssl = NULL;
    close(c->fd);
}

/* --tls: run the handshakes of every connection in the loop until all are done (or dead) or
 * none progressed for 300 ms (a bounded server leaves the others in its backlog: they go on
 * in the timed loop). Returns how many are done. */
static int echo_handshakes(int ep, struct econn *cs, int conns, struct epoll_event *evs,
                           uint64_t *errors) {
    int pending = 0, done = 0;
    for (int i = 0; i < conns; i++) pending += cs[i].alive && cs[i].handshaking;
    uint64_t last = now_ns();
    while (pending > 0 && now_ns() - last < 300000000ull) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, 50);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct econn *c = evs[i].data.ptr;
            if (!c->alive || !c->handshaking) continue;
            int r = tls_handshake(c->ssl);
            if (r == 0) continue;
            last = now_ns();
            pending--;
            if (r > 0) {
                c->handshaking = 0;
                done++;
            } else {
                c->alive = 0;
                (*errors)++;
                echo_close(c);
            }
        }
    }
    return done;
}

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
        if (tls_ctx) {
            cs[i].ssl = tls_new(cs[i].fd);
            cs[i].handshaking = 1;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = &cs[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0) die("epoll_ctl");
    }
    struct epoll_event evs[MAX_EVENTS];
    int tls_ready = 0;
    if (tls_ctx) tls_ready = echo_handshakes(ep, cs, conns, evs, &errors);

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
            echo_close(&cs[i]);
        }
    }
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
                echo_close(c);
            }
        }
        now = now_ns();
    }
    double seconds = (double)(now_ns() - start) / 1e9;
    for (int i = 0; i < conns; i++)
        if (cs[i].alive) echo_close(&cs[i]);
    close(ep);
    char extra[224] = "";
    if (tls_ctx) snprintf(extra, sizeof extra, "%s,\"tls_ready\":%d", tls_extra(), tls_ready);
    print_result("echo", requests, seconds, errors, 0, extra);
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

enum { C_CONNECTING, C_SENDING, C_READING, C_HANDSHAKE };

struct cconn {
    int fd;
    int state;
    SSL *ssl; /* --tls */
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
    c->ssl = NULL;
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
        if (tls_ctx) {
            c->ssl = tls_new(c->fd);
            c->state = C_HANDSHAKE;
        }
    }
    if (c->state == C_HANDSHAKE) {
        int r = tls_handshake(c->ssl);
        if (r <= 0) return r;
        c->state = C_SENDING;
    }
    if (c->state == C_SENDING) {
        if (c->sent == 0) memset(msg, 'c', sizeof msg);
        ssize_t n = conn_send(c->fd, c->ssl, msg + c->sent, CONNECT_MSG - c->sent);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN) return 0;
            return -1;
        }
        c->sent += (size_t)n;
        if (c->sent < CONNECT_MSG) return 0;
        c->state = C_READING;
    }
    for (;;) {
        ssize_t n = conn_recv(c->fd, c->ssl, buf, CONNECT_MSG - c->recvd);
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

/* Close a connect-mode connection: after a completed exchange, TLS sends close_notify first. */
static void connect_close(struct cconn *c, int completed) {
    tls_free(c->ssl, completed);
    c->ssl = NULL;
    close(c->fd);
    c->fd = -1;
}

/* --half-open N: N plain connections that never send a byte (no ClientHello), opened before
 * the run and held to its end. Returns how many connected. */
static int half_open_start(const struct sockaddr_in *a, int *fds, int n) {
    int up = 0;
    for (int i = 0; i < n; i++) {
        fds[i] = tcp_connect_start(a);
        if (fds[i] < 0) continue;
        struct pollfd p = {.fd = fds[i], .events = POLLOUT};
        if (poll(&p, 1, 5000) != 1 || socket_error(fds[i]) != 0) {
            close(fds[i]);
            fds[i] = -1;
            continue;
        }
        up++;
    }
    struct timespec settle = {.tv_sec = 0, .tv_nsec = 100000000}; /* let the server accept */
    nanosleep(&settle, NULL);
    return up;
}

/* How many half-open connections the server has neither closed nor written to; closes all. */
static int half_open_finish(int *fds, int n) {
    int left = 0;
    for (int i = 0; i < n; i++) {
        if (fds[i] < 0) continue;
        struct pollfd p = {.fd = fds[i], .events = POLLIN | POLLRDHUP};
        if (poll(&p, 1, 0) == 0) left++;
        close(fds[i]);
    }
    return left;
}

static int mode_connect(int port, int workers, double duration, int half_open) {
    struct sockaddr_in a = server_addr(port);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    struct cconn *cs = calloc((size_t)workers, sizeof *cs);
    int *idle = calloc((size_t)half_open + 1, sizeof *idle);
    if (!cs || !idle) die("calloc");
    int idle_up = half_open > 0 ? half_open_start(&a, idle, half_open) : 0;
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
            connect_close(c, r > 0);
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
        if (cs[i].fd >= 0) connect_close(&cs[i], 0);
    close(ep);
    (void)active;
    char extra[256];
    int n = snprintf(extra, sizeof extra, "%s", tls_extra());
    if (half_open > 0)
        snprintf(extra + n, sizeof extra - (size_t)n, ",\"half_open\":%d,\"half_open_left\":%d",
                 idle_up, half_open_finish(idle, half_open));
    free(idle);
    print_result("connect", requests, seconds, errors, 0, extra);
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
            "[--lines 1] [--tls none|CAFILE] [--half-open N]\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    const char *mode = argv[1];
    int port = 0, conns = 1, workers = 20, outstanding = 20, timeout_ms = 200;
    size_t size = 64;
    double duration = 2.0, timeout_s = 60.0;
    int half_open = 0;
    const char *tls = NULL;
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
        else if (!strcmp(k, "--tls")) tls = v;
        else if (!strcmp(k, "--half-open")) half_open = atoi(v);
        else usage();
    }
    if (port <= 0 || port > 65535 || conns < 1 || workers < 1 || outstanding < 1 || size < 1 ||
        duration <= 0 || duration > 3600 || timeout_ms < 1 || timeout_s <= 0 || half_open < 0 ||
        half_open > 100000 || (tls && strcmp(mode, "echo") && strcmp(mode, "connect")) ||
        (half_open && strcmp(mode, "connect")))
        usage();
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    if (tls) tls_setup(tls);
    if (!strcmp(mode, "echo")) return mode_echo(port, conns, size, duration);
    if (!strcmp(mode, "connect")) return mode_connect(port, workers, duration, half_open);
    if (!strcmp(mode, "udp")) return mode_udp(port, outstanding, size, duration, timeout_ms);
    if (!strcmp(mode, "idle")) return mode_idle(port, conns, timeout_s);
    usage();
    return 2;
}
