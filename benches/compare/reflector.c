/* The machine's ceiling for the comparison: a UDP "server" that only sets QR and sends each
 * packet back, with recvmmsg/sendmmsg, one SO_REUSEPORT socket per thread.
 * Usage: reflector ADDRESS PORT THREADS */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 64
static struct sockaddr_in bind_addr;

static void *serve(void *arg) {
    (void)arg;
    int fd = socket(AF_INET, SOCK_DGRAM, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&bind_addr, sizeof bind_addr) != 0) { perror("bind"); exit(1); }
    static __thread char bufs[BATCH][1500];
    struct mmsghdr msgs[BATCH];
    struct iovec iovs[BATCH];
    struct sockaddr_in peers[BATCH];
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iovs[i] = (struct iovec){ bufs[i], sizeof bufs[i] };
            msgs[i].msg_hdr = (struct msghdr){ .msg_name = &peers[i], .msg_namelen = sizeof peers[i],
                                               .msg_iov = &iovs[i], .msg_iovlen = 1 };
        }
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n <= 0) continue;
        for (int i = 0; i < n; i++) {
            if (msgs[i].msg_len >= 3) bufs[i][2] |= 0x80; /* QR */
            iovs[i].iov_len = msgs[i].msg_len;
        }
        sendmmsg(fd, msgs, n, 0);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: reflector ADDRESS PORT THREADS\n"); return 2; }
    bind_addr.sin_family = AF_INET;
    bind_addr.sin_port = htons(atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &bind_addr.sin_addr);
    int threads = atoi(argv[3]);
    pthread_t t[64];
    for (int i = 0; i < threads && i < 64; i++) pthread_create(&t[i], NULL, serve, NULL);
    pthread_join(t[0], NULL);
    return 0;
}
