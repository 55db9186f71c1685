/*
 * echo_server: a minimal single-threaded epoll echo server, the ceiling for the benchmarks.
 *
 *   echo_server tcp|udp [--max-seconds N]
 *
 * Binds 127.0.0.1 on an ephemeral port, prints the port on stdout when ready, and echoes:
 * TCP bytes back on the same connection, UDP datagrams back to their sender. It exits on
 * EOF on stdin (the controller went away), on SIGTERM/SIGINT, or after --max-seconds.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 65536
#define MAX_EVENTS 512

struct conn {
    int fd;
    size_t len; /* bytes in buf not yet written back */
    size_t off;
    unsigned char buf[BUF];
};

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static void die(const char *what) {
    fprintf(stderr, "echo_server: %s: %s\n", what, strerror(errno));
    exit(2);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bind_loopback(int type) {
    int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = 0;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (type == SOCK_STREAM && listen(fd, 4096) < 0) die("listen");
    if (type == SOCK_DGRAM) {
        int big = 4 << 20;
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    }
    socklen_t len = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &len) < 0) die("getsockname");
    printf("%d\n", ntohs(a.sin_port));
    fflush(stdout);
    return fd;
}

static void close_conn(int ep, struct conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Echo as much as possible; returns -1 when the connection is finished. */
static int serve_conn(int ep, struct conn *c) {
    for (int guard = 0; guard < 64; guard++) {
        while (c->off < c->len) {
            ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                    return 0;
                }
                if (errno == EINTR) continue;
                return -1;
            }
            c->off += (size_t)n;
        }
        c->off = c->len = 0;
        ssize_t n = recv(c->fd, c->buf, BUF, 0);
        if (n == 0) return -1;
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                return 0;
            }
            if (errno == EINTR) continue;
            return -1;
        }
        c->len = (size_t)n;
    }
    return 0; /* level-triggered: we will be called again */
}

int main(int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "tcp") && strcmp(argv[1], "udp"))) {
        fprintf(stderr, "usage: echo_server tcp|udp [--max-seconds N]\n");
        return 2;
    }
    double max_seconds = 3600;
    if (argc >= 4 && !strcmp(argv[2], "--max-seconds")) max_seconds = atof(argv[3]);
    int is_tcp = !strcmp(argv[1], "tcp");
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    int lfd = bind_loopback(is_tcp ? SOCK_STREAM : SOCK_DGRAM);
    static int lfd_tag, stdin_tag; /* distinct addresses mark the two special fds */
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &lfd_tag};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) die("epoll_ctl");
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &stdin_tag};
    (void)epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev); /* fails harmlessly if stdin is a file */

    static unsigned char dbuf[BUF];
    struct epoll_event evs[MAX_EVENTS];
    double deadline = now_s() + max_seconds;
    while (!stop && now_s() < deadline) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, 1000);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == &stdin_tag) {
                char tmp[256];
                ssize_t r = read(0, tmp, sizeof tmp);
                if (r <= 0) stop = 1;
                continue;
            }
            if (tag == &lfd_tag) {
                if (is_tcp) {
                    for (int k = 0; k < 256; k++) {
                        int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                        if (cfd < 0) break;
                        int one = 1;
                        (void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                        struct conn *c = malloc(sizeof *c);
                        if (!c) {
                            close(cfd);
                            continue;
                        }
                        c->fd = cfd;
                        c->len = c->off = 0;
                        struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                        if (epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev) < 0) {
                            close(cfd);
                            free(c);
                        }
                    }
                } else {
                    for (int k = 0; k < 256; k++) {
                        struct sockaddr_storage peer;
                        socklen_t plen = sizeof peer;
                        ssize_t r = recvfrom(lfd, dbuf, BUF, 0, (struct sockaddr *)&peer, &plen);
                        if (r < 0) break;
                        (void)sendto(lfd, dbuf, (size_t)r, 0, (struct sockaddr *)&peer, plen);
                    }
                }
                continue;
            }
            struct conn *c = tag;
            if (serve_conn(ep, c) < 0) close_conn(ep, c);
        }
    }
    close(lfd);
    close(ep);
    return 0;
}
