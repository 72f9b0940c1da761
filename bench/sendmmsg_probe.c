/* What batching sends with sendmmsg could save the media relay, at best (README, issue 13).
 *
 * How this works: one UDP socket sends 172-byte RTP-sized datagrams over loopback to
 * another, which is drained every 64 packets; first one send() per packet, then sendmmsg()
 * with BATCH packets per call. The cost per packet (send + receive, the kernel's UDP path
 * included) is printed for both, three rounds. This is the most favourable case: in the
 * relay every stream sends from its own socket, so a batch can only hold packets of one
 * stream, which an on-time media thread has one of per round.
 *
 *   gcc -O2 bench/sendmmsg_probe.c -o /tmp/sendmmsg_probe && taskset -c 1 /tmp/sendmmsg_probe
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

enum { PACKETS = 200000, BATCH = 4, SIZE = 172 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void drain(int fd) {
    char buf[2048];
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
}

int main(void) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int rx = socket(AF_INET, SOCK_DGRAM, 0), tx = socket(AF_INET, SOCK_DGRAM, 0);
    int rcvbuf = 1 << 24;
    bind(rx, (struct sockaddr *)&a, sizeof a);
    getsockname(rx, (struct sockaddr *)&a, &len);
    setsockopt(rx, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    connect(tx, (struct sockaddr *)&a, sizeof a);
    char pkt[SIZE];
    memset(pkt, 1, sizeof pkt);
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];
    for (int k = 0; k < BATCH; k++) {
        iov[k] = (struct iovec){.iov_base = pkt, .iov_len = SIZE};
        memset(&mm[k], 0, sizeof mm[k]);
        mm[k].msg_hdr.msg_iov = &iov[k];
        mm[k].msg_hdr.msg_iovlen = 1;
    }
    for (int round = 0; round < 3; round++) {
        double t0 = now();
        for (int i = 0; i < PACKETS; i++) {
            send(tx, pkt, SIZE, MSG_DONTWAIT);
            if (i % 64 == 63)
                drain(rx);
        }
        double t1 = now();
        for (int i = 0; i < PACKETS; i += BATCH) {
            sendmmsg(tx, mm, BATCH, MSG_DONTWAIT);
            if (i % 64 == 64 - BATCH)
                drain(rx);
        }
        double t2 = now();
        printf("per packet, send + receive: send() %.2f us, sendmmsg(%d) %.2f us\n",
               (t1 - t0) / PACKETS * 1e6, BATCH, (t2 - t1) / PACKETS * 1e6);
    }
    return 0;
}
