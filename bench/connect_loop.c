/* connect_loop N PORT [socket-only|connect-only]: N x socket(AF_INET, SOCK_STREAM) +
 * connect(127.0.0.1:PORT) + close against a listener that runs outside the
 * sandbox. SO_LINGER 0 makes close send RST, so no TIME_WAIT entries pile up
 * on the client side across repetitions. Prints nanoseconds per iteration.
 * With "socket-only" the connect is skipped (socket + close): splits the cost
 * of the trapped socket() from that of the connect done on behalf. With
 * "connect-only" the full loop runs but only the time spent inside connect()
 * is counted: the cost of one connect, bare or performed on behalf. */
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common.h"

static struct sockaddr_in dst;
static int do_connect = 1;
static long long in_connect;

static void once(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) { perror("socket"); exit(1); }
    long long c0 = now_ns();
    if (do_connect && connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0) { perror("connect"); exit(1); }
    in_connect += now_ns() - c0;
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

int main(int argc, char **argv) {
    int connect_only = argc == 4 && strcmp(argv[3], "connect-only") == 0;
    if (argc < 3 || argc > 4 || (argc == 4 && !connect_only && strcmp(argv[3], "socket-only") != 0)) {
        fprintf(stderr, "usage: %s N PORT [socket-only|connect-only]\n", argv[0]);
        return 2;
    }
    do_connect = argc == 3 || connect_only;
    long n = parse_count(argv[1]);
    long port = parse_count(argv[2]);
    dst.sin_family = AF_INET;
    dst.sin_port = htons((unsigned short)port);
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (long i = 0; i < n / 10 + 1; i++) once();
    in_connect = 0;
    long long t0 = now_ns();
    for (long i = 0; i < n; i++) once();
    long long t1 = now_ns();
    if (connect_only) t1 = t0 + in_connect;
    report(n, t0, t1);
    return 0;
}
