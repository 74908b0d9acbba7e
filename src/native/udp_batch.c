/*
 * Batched UDP I/O for the DNS listener (Linux): recvmmsg/sendmmsg on a socket polled by Node's own
 * event loop, with one call into JavaScript per batch of datagrams.
 *
 * Why: Node's dgram makes one recvmsg and one sendmsg system call per datagram, and two crossings
 * between C++ and JavaScript around them. For DNS, where the answer itself costs under a
 * microsecond, that per-datagram overhead was ~60% of the CPU per query (BENCHMARKS.md). gdnsd and
 * Knot batch with recvmmsg/sendmmsg; this does the same and leaves everything else to JavaScript.
 *
 * Contract with JavaScript (src/native/udp-batch.ts, which owns the buffers):
 *   in   BATCH slots of IN_SLOT bytes: received datagrams, slot i at i * IN_SLOT
 *   meta BATCH records of META bytes, native-endian int32 fields:
 *          [0] length received (-1: truncated by the kernel, to be ignored)
 *          [1] address family (4 or 6)   [2] source port
 *          [3] response offset in out     [4] response length (0: no response)
 *          bytes 32..47: source address (IPv4 in the first 4)
 *   out  the responses, packed by JavaScript anywhere in the buffer
 * After recvmmsg the callback gets the number of datagrams; it fills [3] and [4] of each record. It
 * may call flush(handle, upTo) when out is full; on return every response not yet sent goes out in
 * one sendmmsg, to the address the query came from.
 *
 * The socket is non-blocking. A response the kernel will not take (EAGAIN, ENOBUFS, an ICMP error
 * pending for that peer) is dropped and counted: it is a lost datagram, which DNS clients retry,
 * and waiting for the socket to drain would stall every other client.
 *
 * Also here: steer(handle, index), which points the socket's SO_REUSEPORT group at one socket (a
 * handover reload's fresh worker, workers/pool).
 */

#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <linux/filter.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
/* Any UDP payload fits (65507 bytes over IPv4), so a large datagram is answered as dgram answers
 * it. Only the pages a datagram fills are touched; the extra 64 bytes keep the slots from all
 * starting in the same CPU cache set. */
#define IN_MAX 65535
#define IN_SLOT (65536 + 64)
#define META 48
#define MIN_OUT 65536
/* Batches per readable event before handing the loop back to timers, TCP and the control plane. */
#define ROUNDS 8

typedef struct sock_s {
  napi_env env;
  int fd;
  int closed;
  uv_poll_t poll;
  napi_ref callback;
  napi_ref buffers[3];
  napi_async_context async;
  uint8_t *in;
  uint8_t *meta;
  uint8_t *out;
  size_t out_len;
  uint32_t count; /* datagrams in the batch being answered */
  uint32_t sent;  /* slots of that batch already flushed */
  double dropped; /* responses the kernel did not take */
  double batches;
  double received;
  struct mmsghdr rx[BATCH];
  struct iovec rx_iov[BATCH];
  struct sockaddr_storage peer[BATCH];
  struct mmsghdr tx[BATCH];
  struct iovec tx_iov[BATCH];
} sock_t;

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) {                                                                       \
      const napi_extended_error_info *info = NULL;                                                 \
      napi_get_last_error_info(env, &info);                                                        \
      napi_throw_error(env, "GSLB_ERR_NATIVE",                                                     \
                       info && info->error_message ? info->error_message : #call);                 \
      return NULL;                                                                                 \
    }                                                                                              \
  } while (0)

static int32_t *meta_of(sock_t *s, uint32_t i) { return (int32_t *)(s->meta + (size_t)i * META); }

static napi_value throw_errno(napi_env env, int err, const char *what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, uv_strerror(-err));
  napi_throw_error(env, uv_err_name(-err), msg);
  return NULL;
}

/* Sends the responses of slots [s->sent, upto) in as few sendmmsg calls as the kernel allows. */
static void flush(sock_t *s, uint32_t upto) {
  uint32_t n = 0;
  for (uint32_t i = s->sent; i < upto; i++) {
    int32_t *m = meta_of(s, i);
    int32_t off = m[3], len = m[4];
    if (len <= 0 || off < 0 || (size_t)off + (size_t)len > s->out_len) continue;
    s->tx_iov[n].iov_base = s->out + off;
    s->tx_iov[n].iov_len = (size_t)len;
    memset(&s->tx[n].msg_hdr, 0, sizeof s->tx[n].msg_hdr);
    s->tx[n].msg_hdr.msg_name = &s->peer[i];
    s->tx[n].msg_hdr.msg_namelen = s->rx[i].msg_hdr.msg_namelen;
    s->tx[n].msg_hdr.msg_iov = &s->tx_iov[n];
    s->tx[n].msg_hdr.msg_iovlen = 1;
    m[4] = 0;
    n++;
  }
  s->sent = upto;
  uint32_t k = 0;
  while (k < n) {
    int r = sendmmsg(s->fd, &s->tx[k], n - k, 0);
    if (r > 0) {
      k += (uint32_t)r;
    } else if (r < 0 && errno == EINTR) {
      continue;
    } else {
      /* The first message of the rest failed: skip it alone; the others may still go. */
      s->dropped += 1;
      k++;
    }
  }
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  sock_t *s = handle->data;
  if (s->closed) return;
  if (status < 0) {
    /* libuv stops a poll handle that reports POLLERR. On this unconnected socket that would be a
     * pending error about one peer (Linux reports none without IP_RECVERR, but other kernels may):
     * reading SO_ERROR clears it, and the socket goes on listening instead of going deaf. */
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    uv_poll_start(&s->poll, UV_READABLE, on_readable);
    return;
  }
  napi_env env = s->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  for (int round = 0; round < ROUNDS && !s->closed; round++) {
    for (uint32_t i = 0; i < BATCH; i++) s->rx[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
    int n = recvmmsg(s->fd, s->rx, BATCH, MSG_DONTWAIT, NULL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (int i = 0; i < n; i++) {
      int32_t *m = meta_of(s, (uint32_t)i);
      uint8_t *addr = s->meta + (size_t)i * META + 32;
      m[0] = (s->rx[i].msg_hdr.msg_flags & MSG_TRUNC) ? -1 : (int32_t)s->rx[i].msg_len;
      m[3] = 0;
      m[4] = 0;
      if (s->peer[i].ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&s->peer[i];
        m[1] = 6;
        m[2] = ntohs(a->sin6_port);
        memcpy(addr, &a->sin6_addr, 16);
      } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&s->peer[i];
        m[1] = 4;
        m[2] = ntohs(a->sin_port);
        memcpy(addr, &a->sin_addr, 4);
      }
    }
    s->count = (uint32_t)n;
    s->sent = 0;
    s->batches += 1;
    s->received += n;
    napi_value cb, recv, argv[1], result;
    napi_get_reference_value(env, s->callback, &cb);
    napi_get_global(env, &recv);
    napi_create_uint32(env, (uint32_t)n, &argv[0]);
    napi_status st = napi_make_callback(env, s->async, recv, cb, 1, argv, &result);
    if (st == napi_pending_exception) {
      /* The JavaScript side answers each query in its own try/catch; reaching here is a bug there.
       * Surface it as an uncaught exception, as Node does for an event handler that throws. */
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
      break;
    }
    if (s->closed) break;
    flush(s, (uint32_t)n);
    if (n < BATCH) break;
  }
  napi_close_handle_scope(env, scope);
}

static void free_after_close(uv_handle_t *handle) { free(handle->data); }

/* Stops polling and closes the socket; references go with the env when it is being torn down. */
static void shut(sock_t *s, int release_refs) {
  if (s->closed) return;
  s->closed = 1;
  uv_poll_stop(&s->poll);
  close(s->fd);
  s->fd = -1;
  if (release_refs) {
    napi_env env = s->env;
    napi_delete_reference(env, s->callback);
    for (int i = 0; i < 3; i++) napi_delete_reference(env, s->buffers[i]);
    napi_async_destroy(env, s->async);
  }
  uv_close((uv_handle_t *)&s->poll, free_after_close);
}

static void env_cleanup(void *arg) { shut((sock_t *)arg, 0); }

static int buffer_arg(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  bool is;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is) return 0;
  void *p;
  if (napi_get_buffer_info(env, v, &p, len) != napi_ok) return 0;
  *data = p;
  return 1;
}

/* open(family, host, port, reusePort, recvBufferSize, in, meta, out, callback) -> [handle, port] */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 9) {
    napi_throw_type_error(env, NULL, "open() takes 9 arguments");
    return NULL;
  }
  int32_t family, port, rcvbuf;
  bool reuse;
  char host[64];
  size_t host_len;
  CHECK(napi_get_value_int32(env, argv[0], &family));
  CHECK(napi_get_value_string_latin1(env, argv[1], host, sizeof host, &host_len));
  CHECK(napi_get_value_int32(env, argv[2], &port));
  CHECK(napi_get_value_bool(env, argv[3], &reuse));
  CHECK(napi_get_value_int32(env, argv[4], &rcvbuf));
  uint8_t *in, *meta, *out;
  size_t in_len, meta_len, out_len;
  if (!buffer_arg(env, argv[5], &in, &in_len) || in_len < (size_t)BATCH * IN_SLOT ||
      !buffer_arg(env, argv[6], &meta, &meta_len) || meta_len < (size_t)BATCH * META ||
      !buffer_arg(env, argv[7], &out, &out_len) || out_len < MIN_OUT) {
    napi_throw_range_error(env, NULL, "open(): in, meta or out buffer too small");
    return NULL;
  }
  if (port < 0 || port > 65535 || (family != 4 && family != 6)) {
    napi_throw_range_error(env, NULL, "open(): bad family or port");
    return NULL;
  }

  struct sockaddr_storage ss;
  socklen_t ss_len;
  memset(&ss, 0, sizeof ss);
  if (family == 4) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return throw_errno(env, EINVAL, host);
    ss_len = sizeof *a;
  } else {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) return throw_errno(env, EINVAL, host);
    ss_len = sizeof *a;
  }

  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  int one = 1;
  /* Same choices as the dgram listener: v6 sockets are v6 only (v4 gets its own listener). */
  if (family == 6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (reuse && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "setsockopt SO_REUSEPORT");
  }
  /* Best effort, like dgram's recvBufferSize: the kernel caps it at net.core.rmem_max. */
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (bind(fd, (struct sockaddr *)&ss, ss_len) != 0) {
    int e = errno;
    close(fd);
    char what[96];
    snprintf(what, sizeof what, "bind %s%s%s:%d", family == 6 ? "[" : "", host, family == 6 ? "]" : "", port);
    return throw_errno(env, e, what);
  }
  struct sockaddr_storage bound;
  socklen_t bound_len = sizeof bound;
  getsockname(fd, (struct sockaddr *)&bound, &bound_len);
  int bound_port = ntohs(family == 4 ? ((struct sockaddr_in *)&bound)->sin_port
                                     : ((struct sockaddr_in6 *)&bound)->sin6_port);

  sock_t *s = calloc(1, sizeof *s);
  if (s == NULL) {
    close(fd);
    return throw_errno(env, ENOMEM, "open");
  }
  s->env = env;
  s->fd = fd;
  s->in = in;
  s->meta = meta;
  s->out = out;
  s->out_len = out_len;
  for (int i = 0; i < BATCH; i++) {
    s->rx_iov[i].iov_base = in + (size_t)i * IN_SLOT;
    s->rx_iov[i].iov_len = IN_MAX;
    s->rx[i].msg_hdr.msg_name = &s->peer[i];
    s->rx[i].msg_hdr.msg_iov = &s->rx_iov[i];
    s->rx[i].msg_hdr.msg_iovlen = 1;
  }
  uv_loop_t *loop;
  napi_value name;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, &s->poll, fd) != 0) {
    close(fd);
    free(s);
    napi_throw_error(env, "GSLB_ERR_NATIVE", "cannot poll the UDP socket on the event loop");
    return NULL;
  }
  s->poll.data = s;
  napi_create_reference(env, argv[8], 1, &s->callback);
  for (int i = 0; i < 3; i++) napi_create_reference(env, argv[5 + i], 1, &s->buffers[i]);
  napi_create_string_utf8(env, "gslb:udp", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &s->async);
  napi_add_env_cleanup_hook(env, env_cleanup, s);
  uv_poll_start(&s->poll, UV_READABLE, on_readable);

  napi_value handle, port_v, pair;
  CHECK(napi_create_external(env, s, NULL, NULL, &handle));
  CHECK(napi_create_int32(env, bound_port, &port_v));
  CHECK(napi_create_array_with_length(env, 2, &pair));
  CHECK(napi_set_element(env, pair, 0, handle));
  CHECK(napi_set_element(env, pair, 1, port_v));
  return pair;
}

/* The socket handle in the first of `want` arguments (the rest land in argv); NULL with a
 * JavaScript exception pending when it is not one. */
static sock_t *socket_arg(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  void *p = NULL;
  napi_valuetype t;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || napi_typeof(env, argv[0], &t) != napi_ok ||
      t != napi_external || napi_get_value_external(env, argv[0], &p) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a socket handle");
    return NULL;
  }
  return p;
}

/* flush(handle, upTo): sends the responses written so far, so JavaScript can reuse out. */
static napi_value js_flush(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  sock_t *s = socket_arg(env, info, 2, argv);
  if (s == NULL) return NULL;
  uint32_t upto;
  CHECK(napi_get_value_uint32(env, argv[1], &upto));
  if (!s->closed && upto <= s->count && upto > s->sent) flush(s, upto);
  return NULL;
}

/* stats(handle) -> [batches, datagrams received, responses dropped] */
static napi_value js_stats(napi_env env, napi_callback_info info) {
  napi_value argv[1], arr, v;
  sock_t *s = socket_arg(env, info, 1, argv);
  if (s == NULL) return NULL;
  CHECK(napi_create_array_with_length(env, 3, &arr));
  double values[3] = {s->batches, s->received, s->dropped};
  for (uint32_t i = 0; i < 3; i++) {
    CHECK(napi_create_double(env, values[i], &v));
    CHECK(napi_set_element(env, arr, i, v));
  }
  return arr;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  sock_t *s = socket_arg(env, info, 1, argv);
  if (s == NULL || s->closed) return NULL;
  napi_remove_env_cleanup_hook(env, env_cleanup, s);
  shut(s, 1);
  return NULL;
}

/*
 * steer(handle, index): every datagram for this socket's SO_REUSEPORT group goes to the group's
 * socket number `index` (sockets are numbered in the order they joined; when one leaves, the last
 * one takes its number), through a one-instruction classic BPF program on the group. An index
 * past the last socket makes the kernel fall back to its flow hash, so the program is harmless
 * once that socket has moved down. A handover's fresh worker steers to itself as soon as it
 * listens: the worker it replaces gets nothing more, reads what it already has queued, and closes
 * an empty socket (closing one with datagrams queued drops them). Returns whether it took.
 */
static napi_value js_steer(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  sock_t *s = socket_arg(env, info, 2, argv);
  if (s == NULL) return NULL;
  uint32_t index;
  if (napi_get_value_uint32(env, argv[1], &index) != napi_ok) {
    napi_throw_type_error(env, NULL, "steer(handle, index): index must be a number");
    return NULL;
  }
  struct sock_filter code[] = {BPF_STMT(BPF_RET | BPF_K, index)};
  struct sock_fprog prog = {.len = 1, .filter = code};
  int ok = !s->closed && setsockopt(s->fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) == 0;
  napi_value out;
  CHECK(napi_get_boolean(env, ok, &out));
  return out;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"flush", NULL, js_flush, NULL, NULL, NULL, napi_default, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"steer", NULL, js_steer, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value batch, slot, meta, min_out;
  napi_create_uint32(env, BATCH, &batch);
  napi_create_uint32(env, IN_SLOT, &slot);
  napi_create_uint32(env, META, &meta);
  napi_create_uint32(env, MIN_OUT, &min_out);
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_set_named_property(env, exports, "BATCH", batch);
  napi_set_named_property(env, exports, "IN_SLOT", slot);
  napi_set_named_property(env, exports, "META", meta);
  napi_set_named_property(env, exports, "MIN_OUT", min_out);
  return exports;
}
