/*
 * A UDP DNS load generator that costs little CPU per query, for `npm run bench:workers`: dnsperf
 * needs about as much CPU per query as our server, so on a 2-core machine it cannot show what a
 * second worker thread adds. This one sends and receives in batches (sendmmsg/recvmmsg, up to 64
 * datagrams per system call) from one thread over several connected sockets (one flow each, which
 * SO_REUSEPORT spreads over the server's workers), keeping up to -q queries outstanding per socket.
 *
 *   loadgen -s 127.0.0.1 -p PORT -d FILE [-l SECONDS] [-c SOCKETS] [-q OUTSTANDING]
 *
 * FILE: one query per line, "NAME TYPE" with TYPE A or AAAA (dnsperf's format). Prints one JSON
 * line: sent, received, lost (outstanding on a socket that got nothing back for 1 s), inflight
 * (outstanding at the end), seconds, qps (received per second), cpuSeconds (its own user + system
 * time: on loopback the sender's system calls also carry the datagrams into the receiving socket).
 * Loopback only: any other address is refused.
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAX_SOCKETS 256
#define MAX_QUERY 300

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Encodes "name" as a DNS name into out; returns its length, or -1 if it is not a valid name. */
static int encode_name(const char *name, uint8_t *out, int room) {
  int n = 0;
  const char *p = name;
  while (*p != '\0' && !(p[0] == '.' && p[1] == '\0')) {
    const char *dot = strchr(p, '.');
    int len = dot ? (int)(dot - p) : (int)strlen(p);
    if (len == 0 || len > 63 || n + 1 + len + 1 > room) return -1;
    out[n++] = (uint8_t)len;
    memcpy(out + n, p, (size_t)len);
    n += len;
    p += len;
    if (*p == '.') p++;
  }
  out[n++] = 0;
  return n;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *file = NULL;
  int port = 0, sockets = 8, outstanding = 100;
  double seconds = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "-s")) host = argv[i + 1];
    else if (!strcmp(argv[i], "-p")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "-d")) file = argv[i + 1];
    else if (!strcmp(argv[i], "-l")) seconds = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "-c")) sockets = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "-q")) outstanding = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "loadgen: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (file == NULL || port <= 0 || port > 65535 || sockets < 1 || sockets > MAX_SOCKETS || outstanding < 1 ||
      seconds <= 0 || inet_pton(AF_INET, host, &to.sin_addr) != 1) {
    fprintf(stderr, "usage: loadgen -s 127.0.0.1 -p PORT -d FILE [-l SECONDS] [-c SOCKETS] [-q OUTSTANDING]\n");
    return 2;
  }
  // The benchmark's traffic stays on this machine.
  if ((ntohl(to.sin_addr.s_addr) >> 24) != 127) {
    fprintf(stderr, "loadgen: %s is not a loopback address\n", host);
    return 2;
  }

  FILE *f = fopen(file, "r");
  if (f == NULL) {
    perror(file);
    return 2;
  }
  int count = 0, cap = 64;
  uint8_t(*queries)[MAX_QUERY] = malloc((size_t)cap * MAX_QUERY);
  int *lengths = malloc((size_t)cap * sizeof(int));
  char line[600], name[512], type[16];
  while (fgets(line, sizeof line, f) != NULL) {
    if (sscanf(line, "%511s %15s", name, type) != 2) continue;
    int qtype = !strcmp(type, "A") ? 1 : !strcmp(type, "AAAA") ? 28 : 0;
    if (qtype == 0) continue;
    if (count == cap) {
      cap *= 2;
      queries = realloc(queries, (size_t)cap * MAX_QUERY);
      lengths = realloc(lengths, (size_t)cap * sizeof(int));
    }
    uint8_t *q = queries[count];
    memset(q, 0, 12);
    q[5] = 1; /* QDCOUNT 1; no RD, as for an authoritative server */
    int n = encode_name(name, q + 12, MAX_QUERY - 12 - 4);
    if (n < 0) continue;
    n += 12;
    q[n++] = 0;
    q[n++] = (uint8_t)qtype;
    q[n++] = 0;
    q[n++] = 1; /* class IN */
    lengths[count++] = n;
  }
  fclose(f);
  if (count == 0) {
    fprintf(stderr, "loadgen: no A or AAAA queries in %s\n", file);
    return 2;
  }

  int fds[MAX_SOCKETS], out[MAX_SOCKETS];
  double moved[MAX_SOCKETS];
  struct pollfd pfd[MAX_SOCKETS];
  for (int s = 0; s < sockets; s++) {
    fds[s] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int buf = 4 << 20;
    setsockopt(fds[s], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    if (fds[s] < 0 || connect(fds[s], (struct sockaddr *)&to, sizeof to) != 0) {
      perror("socket");
      return 1;
    }
    out[s] = 0;
    pfd[s].fd = fds[s];
    pfd[s].events = POLLIN;
  }

  static uint8_t sendbuf[BATCH][MAX_QUERY], recvbuf[BATCH][512];
  struct mmsghdr smsg[BATCH], rmsg[BATCH];
  struct iovec siov[BATCH], riov[BATCH];
  memset(smsg, 0, sizeof smsg);
  memset(rmsg, 0, sizeof rmsg);
  for (int i = 0; i < BATCH; i++) {
    siov[i].iov_base = sendbuf[i];
    smsg[i].msg_hdr.msg_iov = &siov[i];
    smsg[i].msg_hdr.msg_iovlen = 1;
    riov[i].iov_base = recvbuf[i];
    riov[i].iov_len = sizeof recvbuf[i];
    rmsg[i].msg_hdr.msg_iov = &riov[i];
    rmsg[i].msg_hdr.msg_iovlen = 1;
  }

  uint64_t sent = 0, received = 0, lost = 0;
  uint16_t id = 0;
  int next = 0;
  double start = now(), end = start + seconds, t = start;
  for (int s = 0; s < sockets; s++) moved[s] = start;
  while (t < end) {
    for (int s = 0; s < sockets; s++) {
      int room = outstanding - out[s];
      while (room > 0) {
        int n = room < BATCH ? room : BATCH;
        for (int i = 0; i < n; i++) {
          memcpy(sendbuf[i], queries[next], (size_t)lengths[next]);
          sendbuf[i][0] = (uint8_t)(id >> 8);
          sendbuf[i][1] = (uint8_t)id;
          id++;
          siov[i].iov_len = (size_t)lengths[next];
          if (++next == count) next = 0;
        }
        int k = sendmmsg(fds[s], smsg, (unsigned)n, 0);
        if (k <= 0) break; /* socket buffer full (EAGAIN): try again after the next receive */
        out[s] += k;
        sent += (uint64_t)k;
        room -= k;
      }
    }
    if (poll(pfd, (nfds_t)sockets, 100) < 0 && errno != EINTR) {
      perror("poll");
      return 1;
    }
    t = now();
    for (int s = 0; s < sockets; s++) {
      if (pfd[s].revents & POLLIN) {
        int k;
        while ((k = recvmmsg(fds[s], rmsg, BATCH, MSG_DONTWAIT, NULL)) > 0) {
          received += (uint64_t)k;
          out[s] = out[s] > k ? out[s] - k : 0;
          moved[s] = t;
          if (k < BATCH) break;
        }
      } else if (out[s] > 0 && t - moved[s] > 1.0) {
        /* Nothing came back for a second: count what is out as lost and send afresh. */
        lost += (uint64_t)out[s];
        out[s] = 0;
        moved[s] = t;
      }
    }
  }
  double took = now() - start;
  uint64_t inflight = 0;
  for (int s = 0; s < sockets; s++) {
    inflight += (uint64_t)out[s];
    close(fds[s]);
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
               (double)ru.ru_stime.tv_usec / 1e6;
  printf("{\"sent\":%llu,\"received\":%llu,\"lost\":%llu,\"inflight\":%llu,\"seconds\":%.3f,\"qps\":%.0f,"
         "\"cpuSeconds\":%.3f}\n",
         (unsigned long long)sent, (unsigned long long)received, (unsigned long long)lost,
         (unsigned long long)inflight, took, (double)received / took, cpu);
  return 0;
}
