// A UDP socket read and written in batches: recvmmsg(2) takes every datagram waiting (up to
// BATCH) in one system call and one call into JavaScript, sendmmsg(2) sends the batch's replies
// in one more. node:dgram pays, per datagram, a receive buffer, an `rinfo` object with the
// address as a string, a call into JavaScript, and a send request: more CPU than dnsmasq spends
// on a whole query (dns/README.md, "Why the figures are what they are"). This file is only that
// system-call boundary; everything DNS stays in TypeScript (dns/udp/batch-socket.ts).
//
// The socket is non-blocking and watched by a uv_poll handle on the calling thread's own event
// loop, so it works the same on the main thread and in worker threads.
//
// Per socket, JavaScript sees two buffers that this file owns and rewrites on each batch:
//   meta: BATCH records of META bytes: u32 length, u16 family (4 or 6), u16 port, 16 address
//         bytes (IPv4 in the first 4), u32 scope id; host byte order except the address.
//   data: the batch's datagrams, each copied into a fresh Buffer laid end to end, so a handler
//         may keep its query (a forwarded question does) after the batch is gone.
// A reply names the record it answers by index; the address is taken from there, never parsed
// back from a string.
#define NAPI_VERSION 8
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define SLOT 4096 /* larger queries are dropped: no DNS query needs them over UDP */
#define META 28

typedef struct {
  napi_env env;
  uv_poll_t poll;
  int fd;
  int closing;   /* shut: the poll stopped, the fd closed, the handle closing */
  int closed;    /* the handle's close callback ran */
  int finalized; /* the JavaScript handle was collected: the memory is ours to free */
  napi_ref onbatch;
  napi_ref meta_ref;
  napi_async_context async;
  uint8_t *meta;
  struct mmsghdr in[BATCH];
  struct iovec in_iov[BATCH];
  struct sockaddr_in6 from[BATCH];
  uint8_t *slots;
} sock_t;

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, "udp-batch: " #call " failed"); return NULL; } } while (0)

static napi_value throw_errno(napi_env env, const char *syscall, int err) {
  napi_value msg, code, error, sys;
  char text[160];
  const char *name = err == EADDRINUSE ? "EADDRINUSE" : err == EADDRNOTAVAIL ? "EADDRNOTAVAIL"
                   : err == EACCES ? "EACCES" : err == EINVAL ? "EINVAL" : err == ENODEV ? "ENODEV" : "EIO";
  snprintf(text, sizeof text, "%s %s (%s)", syscall, name, strerror(err));
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys);
  napi_create_error(env, code, msg, &error);
  napi_set_named_property(env, error, "syscall", sys);
  napi_throw(env, error);
  return NULL;
}

static void release(sock_t *s) {
  free(s->slots);
  free(s);
}

/* The memory goes when both the event loop and JavaScript are done with it. */
static void on_closed(uv_handle_t *h) {
  sock_t *s = h->data;
  s->closed = 1;
  if (s->finalized) release(s);
}

/* Idempotent: from close(), from the finalizer, and from the environment's teardown. */
static void shut(sock_t *s) {
  if (s->closing) return;
  s->closing = 1;
  napi_env env = s->env;
  if (s->onbatch) napi_delete_reference(env, s->onbatch);
  if (s->meta_ref) napi_delete_reference(env, s->meta_ref);
  if (s->async) napi_async_destroy(env, s->async);
  s->onbatch = s->meta_ref = NULL;
  s->async = NULL;
  uv_poll_stop(&s->poll);
  close(s->fd);
  uv_close((uv_handle_t *)&s->poll, on_closed);
}

static void cleanup_hook(void *arg) { shut(arg); }

static void finalize(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  sock_t *s = data;
  s->finalized = 1;
  if (!s->closing) {
    napi_remove_env_cleanup_hook(env, cleanup_hook, s);
    shut(s);
  } else if (s->closed) {
    release(s);
  }
}

static sock_t *unwrap(napi_env env, napi_value v) {
  sock_t *s = NULL;
  if (napi_get_value_external(env, v, (void **)&s) != napi_ok || !s || s->closing) {
    napi_throw_error(env, "ERR_SOCKET_CLOSED", "udp-batch: the socket is closed");
    return NULL;
  }
  return s;
}

static int fill_address(const char *host, uint32_t port, int v6, struct sockaddr_in6 *out, socklen_t *len) {
  memset(out, 0, sizeof *out);
  if (!v6) {
    struct sockaddr_in *a = (struct sockaddr_in *)out;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    *len = sizeof *a;
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : EINVAL;
  }
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  snprintf(buf, sizeof buf, "%s", host);
  char *pct = strchr(buf, '%');
  if (pct) {
    *pct = 0;
    out->sin6_scope_id = if_nametoindex(pct + 1);
    if (!out->sin6_scope_id) return ENODEV;
  }
  out->sin6_family = AF_INET6;
  out->sin6_port = htons(port);
  *len = sizeof *out;
  return inet_pton(AF_INET6, buf, &out->sin6_addr) == 1 ? 0 : EINVAL;
}

static void on_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  sock_t *s = h->data;
  if (s->closing) return;
  napi_env env = s->env;
  if (status < 0) {
    uv_poll_stop(h);
    return;
  }
  int n = recvmmsg(s->fd, s->in, BATCH, MSG_DONTWAIT, NULL);
  if (n <= 0) return; /* EAGAIN (another reader was first), EINTR: the poll says when to retry */
  size_t total = 0;
  int kept = 0;
  for (int i = 0; i < n; i++) {
    /* The kernel shortened it to the sender's address length: room for either family again. */
    s->in[i].msg_hdr.msg_namelen = sizeof s->from[i];
    /* A truncated datagram is dropped: its length is marked 0 and JavaScript skips it. */
    if (s->in[i].msg_hdr.msg_flags & MSG_TRUNC) s->in[i].msg_len = 0;
    total += s->in[i].msg_len;
  }
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  void *data;
  napi_value buf, count, cb, recv;
  if (napi_create_buffer(env, total ? total : 1, &data, &buf) == napi_ok) {
    uint8_t *p = data;
    for (int i = 0; i < n; i++) {
      uint8_t *m = s->meta + (size_t)i * META;
      uint32_t len = s->in[i].msg_len;
      memcpy(p, s->slots + (size_t)i * SLOT, len);
      p += len;
      kept += len > 0;
      uint16_t family, port;
      uint32_t scope_id = 0;
      struct sockaddr_in6 *a = &s->from[i];
      if (a->sin6_family == AF_INET6) {
        family = 6;
        port = ntohs(a->sin6_port);
        memcpy(m + 8, &a->sin6_addr, 16);
        scope_id = a->sin6_scope_id;
      } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)a;
        family = 4;
        port = ntohs(a4->sin_port);
        memset(m + 8, 0, 16);
        memcpy(m + 8, &a4->sin_addr, 4);
      }
      memcpy(m, &len, 4);
      memcpy(m + 4, &family, 2);
      memcpy(m + 6, &port, 2);
      memcpy(m + 24, &scope_id, 4);
    }
    if (kept) {
      napi_create_uint32(env, (uint32_t)n, &count);
      napi_get_reference_value(env, s->onbatch, &cb);
      napi_get_global(env, &recv);
      napi_value args[2] = { buf, count };
      napi_value result;
      /* make_callback: the microtasks the handlers queued (answers settling) run afterwards. */
      if (napi_make_callback(env, s->async, recv, cb, 2, args, &result) == napi_pending_exception) {
        napi_value err;
        napi_get_and_clear_last_exception(env, &err);
        napi_fatal_exception(env, err);
      }
    }
  }
  napi_close_handle_scope(env, scope);
}

/* open(v6, host, port, reusePort, bufferBytes, onbatch(data, count)) -> [handle, meta, port] */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool v6, reuse;
  char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  size_t hostlen;
  uint32_t port, bufbytes;
  CHECK(napi_get_value_bool(env, argv[0], &v6));
  CHECK(napi_get_value_string_utf8(env, argv[1], host, sizeof host, &hostlen));
  CHECK(napi_get_value_uint32(env, argv[2], &port));
  CHECK(napi_get_value_bool(env, argv[3], &reuse));
  CHECK(napi_get_value_uint32(env, argv[4], &bufbytes));

  struct sockaddr_in6 addr;
  socklen_t addrlen;
  int err = fill_address(host, port, v6, &addr, &addrlen);
  if (err) return throw_errno(env, "bind", err);
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int one = 1, size = (int)bufbytes;
  if ((v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
      || (reuse && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
      || setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size) < 0
      || setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size) < 0
      || bind(fd, (struct sockaddr *)&addr, addrlen) < 0) {
    err = errno;
    close(fd);
    return throw_errno(env, "bind", err);
  }
  struct sockaddr_in6 bound;
  socklen_t boundlen = sizeof bound;
  getsockname(fd, (struct sockaddr *)&bound, &boundlen);
  uint32_t bound_port = ntohs(bound.sin6_family == AF_INET6 ? bound.sin6_port : ((struct sockaddr_in *)&bound)->sin_port);

  sock_t *s = calloc(1, sizeof *s);
  if (s) s->slots = malloc((size_t)BATCH * SLOT);
  if (!s || !s->slots) {
    close(fd);
    if (s) release(s);
    napi_throw_error(env, NULL, "udp-batch: out of memory");
    return NULL;
  }
  s->env = env;
  s->fd = fd;
  /* What recvmmsg reads into, set once: each record's slot and address (calloc left the control
   * fields empty); it writes back only the lengths and flags. */
  for (int i = 0; i < BATCH; i++) {
    s->in_iov[i].iov_base = s->slots + (size_t)i * SLOT;
    s->in_iov[i].iov_len = SLOT;
    s->in[i].msg_hdr.msg_name = &s->from[i];
    s->in[i].msg_hdr.msg_namelen = sizeof s->from[i];
    s->in[i].msg_hdr.msg_iov = &s->in_iov[i];
    s->in[i].msg_hdr.msg_iovlen = 1;
  }
  napi_value meta, handle, name, out, portv;
  void *meta_data;
  uv_loop_t *loop;
  if (napi_create_arraybuffer(env, (size_t)BATCH * META, &meta_data, &meta) != napi_ok
      || napi_create_reference(env, meta, 1, &s->meta_ref) != napi_ok
      || napi_create_reference(env, argv[5], 1, &s->onbatch) != napi_ok
      || napi_create_string_utf8(env, "udp-batch", NAPI_AUTO_LENGTH, &name) != napi_ok
      || napi_async_init(env, NULL, name, &s->async) != napi_ok
      || napi_get_uv_event_loop(env, &loop) != napi_ok
      || uv_poll_init(loop, &s->poll, fd) != 0) {
    if (s->meta_ref) napi_delete_reference(env, s->meta_ref);
    if (s->onbatch) napi_delete_reference(env, s->onbatch);
    if (s->async) napi_async_destroy(env, s->async);
    close(fd);
    release(s);
    napi_throw_error(env, NULL, "udp-batch: cannot set the socket up");
    return NULL;
  }
  s->meta = meta_data;
  s->poll.data = s;
  uv_poll_start(&s->poll, UV_READABLE, on_readable);
  napi_add_env_cleanup_hook(env, cleanup_hook, s);
  CHECK(napi_create_external(env, s, finalize, NULL, &handle));
  CHECK(napi_create_uint32(env, bound_port, &portv));
  CHECK(napi_create_array_with_length(env, 3, &out));
  napi_set_element(env, out, 0, handle);
  napi_set_element(env, out, 1, meta);
  napi_set_element(env, out, 2, portv);
  return out;
}

/* send(handle, replies: Buffer[], records: Uint8Array, count) -> how many the kernel took or
 * refused (the rest met a full send buffer and were dropped). Valid only during the batch
 * callback that filled `meta`: the addresses are the batch's. */
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = unwrap(env, argv[0]);
  if (!s) return NULL;
  uint8_t *records;
  size_t nrec;
  uint32_t count;
  CHECK(napi_get_typedarray_info(env, argv[2], NULL, &nrec, (void **)&records, NULL, NULL));
  CHECK(napi_get_value_uint32(env, argv[3], &count));
  if (count > BATCH || count > nrec) count = nrec < BATCH ? (uint32_t)nrec : BATCH;
  struct mmsghdr out[BATCH];
  struct iovec iov[BATCH];
  memset(out, 0, sizeof(struct mmsghdr) * count);
  for (uint32_t i = 0; i < count; i++) {
    napi_value b;
    void *data;
    size_t len;
    CHECK(napi_get_element(env, argv[1], i, &b));
    CHECK(napi_get_buffer_info(env, b, &data, &len));
    uint32_t r = records[i] < BATCH ? records[i] : 0;
    iov[i].iov_base = data;
    iov[i].iov_len = len;
    out[i].msg_hdr.msg_iov = &iov[i];
    out[i].msg_hdr.msg_iovlen = 1;
    out[i].msg_hdr.msg_name = &s->from[r];
    out[i].msg_hdr.msg_namelen = s->from[r].sin6_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  }
  uint32_t sent = 0;
  while (sent < count) {
    int k = sendmmsg(s->fd, out + sent, count - sent, MSG_DONTWAIT);
    if (k > 0) { sent += (uint32_t)k; continue; }
    if (k < 0 && errno == EINTR) continue;
    /* The send buffer is full (EAGAIN) or the datagram refused: drop, the client retries. */
    if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { sent++; continue; }
    break;
  }
  napi_value v;
  CHECK(napi_create_uint32(env, sent, &v));
  return v;
}

/* sendTo(handle, reply, address bytes (4 or 16), port, scope) -> whether sent: a late reply,
 * after its batch, or a datagram that answers nothing. */
static napi_value js_send_to(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = unwrap(env, argv[0]);
  if (!s) return NULL;
  void *data, *addr;
  size_t len, alen;
  uint32_t port, scope_id;
  CHECK(napi_get_buffer_info(env, argv[1], &data, &len));
  CHECK(napi_get_typedarray_info(env, argv[2], NULL, &alen, &addr, NULL, NULL));
  CHECK(napi_get_value_uint32(env, argv[3], &port));
  CHECK(napi_get_value_uint32(env, argv[4], &scope_id));
  struct sockaddr_in6 to;
  socklen_t tolen;
  memset(&to, 0, sizeof to);
  if (alen == 16) {
    to.sin6_family = AF_INET6;
    to.sin6_port = htons(port);
    to.sin6_scope_id = scope_id;
    memcpy(&to.sin6_addr, addr, 16);
    tolen = sizeof to;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&to;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    memcpy(&a->sin_addr, addr, 4);
    tolen = sizeof *a;
  }
  ssize_t k = sendto(s->fd, data, len, MSG_DONTWAIT, (struct sockaddr *)&to, tolen);
  napi_value v;
  CHECK(napi_get_boolean(env, k >= 0, &v));
  return v;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sock_t *s = NULL;
  if (napi_get_value_external(env, argv[0], (void **)&s) == napi_ok && s && !s->closing) {
    napi_remove_env_cleanup_hook(env, cleanup_hook, s);
    shut(s);
  }
  return NULL;
}

/* ifName(index) -> the interface's name, '' when there is none: a link-local sender's scope, as
 * node:dgram spells it (fe80::2%eth0). */
static napi_value js_if_name(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], v;
  uint32_t index;
  char name[IF_NAMESIZE] = "";
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_uint32(env, argv[0], &index));
  if (!if_indextoname(index, name)) name[0] = 0;
  CHECK(napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &v));
  return v;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    { "open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL },
    { "send", NULL, js_send, NULL, NULL, NULL, napi_default, NULL },
    { "sendTo", NULL, js_send_to, NULL, NULL, NULL, napi_default, NULL },
    { "close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL },
    { "ifName", NULL, js_if_name, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_value batch, meta;
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_create_uint32(env, BATCH, &batch);
  napi_create_uint32(env, META, &meta);
  napi_set_named_property(env, exports, "BATCH", batch);
  napi_set_named_property(env, exports, "META", meta);
  return exports;
}
