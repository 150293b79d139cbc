/* SPDX-License-Identifier: MIT */
/*
 * appsrv.h - the whole public API of libappsrv.
 *
 * Two layers:
 *   1. the socket layer (appsrv_listen, appsrv_accept, appsrv_recv,
 *      appsrv_send_all, ...): thin blocking-or-not wrappers that a host can
 *      use to write a classic "accept, recv, process, send" server;
 *   2. the server layer (appsrv_server_*, appsrv_route*, appsrv_req_*,
 *      appsrv_res_*): epoll loops on worker threads that speak HTTP/1.1 and
 *      a line protocol and call the host's handlers.
 *
 * Conventions: a call that can fail returns int (or ssize_t): >= 0 on
 * success, a negative errno value or a negative APPSRV_E* code on failure;
 * appsrv_strerror() names it. Nothing here prints, exits or raises SIGPIPE.
 * Every function states its thread rule: "any thread", "loop thread only"
 * (inside a handler, on the request's own worker) or "async-signal-safe".
 */
#ifndef APPSRV_H
#define APPSRV_H

#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define APPSRV_API __attribute__((visibility("default")))
#define APPSRV_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define APPSRV_API
#define APPSRV_PRINTF(f, a)
#endif

/* ---------------------------------------------------------------- version */

#define APPSRV_VERSION_MAJOR 0
#define APPSRV_VERSION_MINOR 1
#define APPSRV_VERSION_PATCH 0
#define APPSRV_VERSION_HEX                                                     \
    ((APPSRV_VERSION_MAJOR << 16) | (APPSRV_VERSION_MINOR << 8) | APPSRV_VERSION_PATCH)
#define APPSRV_VERSION_STRING "0.1.0"

/* The run-time version string, e.g. "0.1.0". Static; any thread. */
APPSRV_API const char *appsrv_version(void);

/* ----------------------------------------------------------------- errors */

/*
 * Codes of the library's own, for failures that have no errno. They are
 * negative and far below any errno value. X(name, value, message).
 */
#define APPSRV_ERR_MAP(X)                                                      \
    X(EAI_ADDRFAMILY, -3001, "address family not supported for this host")    \
    X(EAI_AGAIN, -3002, "temporary failure in name resolution")               \
    X(EAI_BADFLAGS, -3003, "bad flags for name resolution")                   \
    X(EAI_FAIL, -3004, "non-recoverable failure in name resolution")          \
    X(EAI_FAMILY, -3005, "address family not supported")                      \
    X(EAI_MEMORY, -3006, "out of memory in name resolution")                  \
    X(EAI_NODATA, -3007, "host has no address")                               \
    X(EAI_NONAME, -3008, "host or service not known")                         \
    X(EAI_SERVICE, -3009, "service not supported for this socket type")       \
    X(EAI_SOCKTYPE, -3010, "socket type not supported")                       \
    X(EAI_SYSTEM, -3011, "system error in name resolution")                   \
    X(EAI_OTHER, -3012, "unknown name resolution failure")                    \
    X(ECLOSED, -3100, "connection closed by peer")                            \
    X(EPARSE, -3101, "malformed input")                                       \
    X(ESTATE, -3102, "call not valid in this state")                          \
    X(ECANCELED, -3103, "request canceled: the client is gone")                \
    X(ENOBODY, -3104, "this response carries no body (204 or 304)")          \
    X(ETLSCERT, -3200, "cannot load the TLS certificate chain")              \
    X(ETLSKEY, -3201, "cannot load the TLS private key, or it does not match") \
    X(ETLSCONF, -3202, "TLS settings rejected (versions, ciphers or groups)")

enum appsrv_errno {
#define APPSRV_X_ENUM_(name, value, msg) APPSRV_##name = (value),
    APPSRV_ERR_MAP(APPSRV_X_ENUM_)
#undef APPSRV_X_ENUM_
};

/*
 * A message for err (a negative errno value or an APPSRV_E* code; the sign
 * is ignored for errno values). Static string, never NULL; any thread.
 */
APPSRV_API const char *appsrv_strerror(int err);

/* The symbolic name of err, e.g. "EADDRINUSE" or "APPSRV_EPARSE". Static,
 * never NULL ("UNKNOWN" when unknown); any thread. */
APPSRV_API const char *appsrv_errname(int err);

/* ----------------------------------------------------------- socket layer */

/* A peer or local address: IPv4 or IPv6. Plain data; copy freely. */
typedef struct appsrv_addr {
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } u;
    socklen_t len;
} appsrv_addr_t;

/* Flags for appsrv_listen(). Close-on-exec and SO_REUSEADDR are always set. */
#define APPSRV_LISTEN_NONBLOCK 0x1u  /* O_NONBLOCK on the listening socket */
#define APPSRV_LISTEN_REUSEPORT 0x2u /* SO_REUSEPORT (several sockets, one port) */
#define APPSRV_LISTEN_V6ONLY 0x4u    /* IPV6_V6ONLY on an IPv6 socket */

/*
 * Resolves host (numeric or name; NULL or "" means every IPv4 address,
 * "::" every IPv6 address) and port (0 picks a free port) with
 * getaddrinfo(), then socket + bind + listen on the first address that
 * works. backlog <= 0 means SOMAXCONN.
 * Without APPSRV_LISTEN_V6ONLY an IPv6 socket is made dual-stack
 * explicitly ("::" also takes IPv4), whatever the system default.
 * Returns the listening fd (close-on-exec; the caller closes it), or
 * -errno (e.g. -EADDRINUSE, -EACCES, -EINVAL for a port outside 0..65535
 * or unknown flag bits) or APPSRV_EAI_* when the name does not resolve.
 * Any thread.
 */
APPSRV_API int appsrv_listen(const char *host, int port, int backlog, unsigned flags);

/* The local port a bound socket listens on, or -errno. Any thread. */
APPSRV_API int appsrv_local_port(int fd);

/*
 * Connects a TCP socket to host:port (host NULL or "": loopback), waiting
 * at most timeout_ms (< 0: no limit) for the connection; name resolution
 * comes first and is not cut short by the timeout. Returns a blocking, close-on-exec fd or -errno
 * (-ETIMEDOUT, -ECONNREFUSED, ...) or APPSRV_EAI_*. Any thread.
 */
APPSRV_API int appsrv_connect(const char *host, int port, int timeout_ms);

/* Flags for appsrv_accept(). Close-on-exec is always set. */
#define APPSRV_ACCEPT_NONBLOCK 0x1u

/*
 * Accepts one connection on lfd. Retries EINTR and ECONNABORTED (a peer
 * that gave up before we accepted is not an error of ours). peer may be
 * NULL. Returns the connected fd or -errno: -EAGAIN on a non-blocking lfd
 * with nothing pending, -EMFILE/-ENFILE when out of descriptors, -EINVAL
 * for unknown flag bits. Any thread.
 */
APPSRV_API int appsrv_accept(int lfd, appsrv_addr_t *peer, unsigned flags);

/*
 * Receives at most len bytes, waiting at most timeout_ms for the first
 * byte (< 0: no limit; 0: do not wait). Retries EINTR. Works on blocking
 * and non-blocking fds. Returns the byte count (0 means the peer closed
 * its side), -ETIMEDOUT (also for timeout 0 with nothing to read), or
 * -errno. Any thread.
 */
APPSRV_API ssize_t appsrv_recv(int fd, void *buf, size_t len, int timeout_ms);

/*
 * Sends all len bytes, looping over partial writes and EINTR, never
 * raising SIGPIPE (a closed peer gives -EPIPE or -ECONNRESET).
 * timeout_ms bounds each wait for progress, not the whole transfer
 * (< 0: no limit), so a slow but steady reader is served in full.
 * Returns len, or -ETIMEDOUT / -errno; on failure an unknown prefix was
 * sent, so the caller must close the connection. Any thread.
 */
APPSRV_API ssize_t appsrv_send_all(int fd, const void *buf, size_t len, int timeout_ms);

/*
 * Formats addr as "1.2.3.4:80" or "[::1]:80" (link-local IPv6 with its
 * interface number, "[fe80::1%2]:80") into buf, NUL-terminated. Returns
 * the length, or -EINVAL (NULL addr), -ENOSPC (buf set to ""), or
 * -EAFNOSUPPORT. Any thread.
 */
APPSRV_API int appsrv_addr_format(const appsrv_addr_t *addr, char *buf, size_t cap);

/*
 * Percent-decodes src[0..len) into dst (NUL-terminated); with plus_space,
 * '+' becomes ' ' (query strings). Returns the decoded length, -EINVAL
 * for a '%' not followed by two hex digits, -ENOSPC when cap is too small
 * (cap >= len + 1 always suffices). Any thread.
 */
APPSRV_API ssize_t appsrv_pct_decode(const char *src, size_t len, char *dst, size_t cap,
                                     bool plus_space);

/* ----------------------------------------------------------- server layer */

typedef struct appsrv_server appsrv_server_t;
typedef struct appsrv_req appsrv_req_t;
typedef struct appsrv_res appsrv_res_t;

/* A view into memory the library owns: not NUL-terminated. ptr is NULL
 * when the thing asked for is absent. */
typedef struct appsrv_str {
    const char *ptr;
    size_t len;
} appsrv_str_t;

typedef enum appsrv_proto {
    APPSRV_PROTO_HTTP = 1,
    APPSRV_PROTO_LINE = 2,
    APPSRV_PROTO_WS = 3, /* a WebSocket connection (after its 101) */
} appsrv_proto_t;

/* What an access-log callback receives; valid during the call only. */
typedef struct appsrv_log_entry {
    const appsrv_addr_t *peer;
    appsrv_proto_t proto;
    appsrv_str_t method; /* HTTP method or line command; as far as parsed
                            (empty when the request line was not) */
    appsrv_str_t target; /* HTTP request target; empty for line requests */
    int status;        /* the status sent; 499 when the client left first */
    uint64_t bytes;    /* response bytes framed: head + body (all chunks of
                          a stream) */
    uint64_t usec;     /* from the request's first byte to its last byte
                          framed (0 when no request was parsed) */
    bool aborted;      /* the client left (or the response timed out)
                          before the response was complete */
    /* Fields below were added after 0.1.0. */
    int http_minor;              /* HTTP/1.<minor> of the request line; -1 when it was
                                    not parsed, and for line requests */
    uint64_t bytes_in;           /* request bytes read: head + body as framed */
    uint64_t body_bytes;         /* response body bytes (no head, no chunk framing):
                                    Apache's %b */
    const appsrv_addr_t *client; /* the client's address: the socket peer
                                    today; the address a trusted proxy
                                    reports once PROXY/X-Forwarded-For are
                                    supported */
    appsrv_str_t user_agent;     /* User-Agent field; ptr NULL when absent */
    appsrv_str_t referer;        /* Referer field; ptr NULL when absent */
    appsrv_str_t request_id;     /* see appsrv_req_id(); len 0 when off */
    appsrv_str_t tls_version;    /* e.g. "TLSv1.3"; len 0 for cleartext */
    appsrv_str_t route;          /* the matched route pattern (HTTP) or command
                                    (line); ptr NULL when none matched */
    int64_t time_us;             /* wall clock (CLOCK_REALTIME, microseconds
                                    since the epoch) of the request's first
                                    byte, or of the log call */
    int worker;                  /* index of the worker thread (0..threads-1) */
} appsrv_log_entry_t;

/* Called on the loop thread once per response. Must not block. */
typedef void (*appsrv_log_cb)(const appsrv_log_entry_t *entry, void *user);

/* Access-log line formats (appsrv_access_log_fd()). */
typedef enum appsrv_log_format {
    APPSRV_LOG_COMBINED = 1, /* Apache's combined log format */
    APPSRV_LOG_JSON = 2,     /* one JSON object per line */
} appsrv_log_format_t;

/*
 * Formats entry as one line of Apache's combined log format, '\n'
 * included:
 *   CLIENT - - [DD/Mon/YYYY:HH:MM:SS +0000] "REQUEST" STATUS BODY "REFERER" "USER-AGENT"
 * REQUEST is "METHOD TARGET HTTP/1.x" as far as it was parsed ("-" when
 * nothing was), BODY is body_bytes or "-" for 0, absent fields are "-",
 * time is UTC. In the quoted fields '"' and '\' get a backslash, \b \n
 * \r \t \v their C escapes, other bytes outside 0x20..0x7E "\xhh"
 * (Apache's ap_escape_logitem), so a line never breaks and a field never
 * ends early.
 * snprintf-like: writes at most cap bytes including a NUL (cap > 0) and
 * returns the length the whole line needs (without the NUL): the output
 * is complete when the result is < cap. Any thread.
 */
APPSRV_API size_t appsrv_log_format_combined(const appsrv_log_entry_t *entry, char *buf,
                                             size_t cap);

/*
 * Formats entry as one JSON object and '\n' (JSON lines): keys time
 * (RFC 3339, UTC, microseconds), client, peer, proto, method, target,
 * version, status, bytes_in, bytes_out, body_bytes, duration_us,
 * user_agent, referer, request_id, tls_version, route, aborted, worker.
 * Absent strings are null. Strings are escaped per RFC 8259: '"', '\'
 * and control bytes (\u00XX or the short forms), DEL as \u007f, and each
 * byte that is not part of well-formed UTF-8 becomes U+FFFD, so every
 * line is valid UTF-8 JSON. Same returns as appsrv_log_format_combined().
 */
APPSRV_API size_t appsrv_log_format_json(const appsrv_log_entry_t *entry, char *buf, size_t cap);

/* Severity of an operational event (syslog's numbers). */
#define APPSRV_LEVEL_ERROR 3
#define APPSRV_LEVEL_WARN  4
#define APPSRV_LEVEL_INFO  6
#define APPSRV_LEVEL_DEBUG 7

/*
 * One of the library's own operational events, for the on_event callback.
 * name is stable and static: "accept_error" (err set, e.g. EMFILE; the
 * listener pauses), "conn_refused" (the connection cap), "protocol_error"
 * (status set: a malformed or refused request, detail gives the reason),
 * "timeout" (detail: head, body, idle, write, linger or response),
 * "access_log_error" (err set: the access-log file could not be written),
 * "tls_handshake_failed" (reserved for the TLS transport),
 * "notify_error" (err set, detail the state: cfg.sd_notify could not
 * reach $NOTIFY_SOCKET).
 * Valid during the call only.
 */
typedef struct appsrv_event {
    int level;                 /* APPSRV_LEVEL_* */
    const char *name;          /* stable event name (see above) */
    const char *detail;        /* short static text, never NULL */
    int err;                   /* a negative errno value, or 0 */
    int status;                /* the status answered, or 0 */
    const appsrv_addr_t *peer; /* the client, or NULL */
    int worker;                /* index of the worker thread */
    unsigned suppressed;       /* events of this name dropped by the rate
                                  limit on this worker since the last one */
} appsrv_event_t;

/* Called on the loop thread; at most 10 times per second per event name
 * per worker (the rest are counted in the next call's suppressed). Must
 * not block. */
typedef void (*appsrv_event_cb)(const appsrv_event_t *ev, void *user);

/*
 * Server configuration. Fill with appsrv_config_init(), then override
 * fields. appsrv_server_new() copies it. New fields are added at the end.
 */
typedef struct appsrv_config {
    int threads;              /* worker threads (default: online CPUs) */
    int max_conns;            /* open client connections (10,000) */
    size_t max_head;          /* request line + headers bytes (16 KiB) */
    size_t max_target;        /* request-target bytes (8 KiB) */
    size_t max_headers;       /* header fields per request (128) */
    size_t max_body;          /* request body bytes (8 MiB) */
    size_t max_line;          /* line-protocol request bytes (64 KiB) */
    int head_timeout_ms;      /* head must complete in (10 s) */
    int idle_timeout_ms;      /* keep-alive idle, and body read stall (60 s) */
    int write_timeout_ms;     /* write stall: no progress for (30 s) */
    int drain_timeout_ms;     /* appsrv_server_stop(): in-flight bound (10 s) */
    int backlog;              /* listen() backlog (511) */
    appsrv_log_cb access_log; /* NULL: no access log */
    void *access_log_user;
    int response_timeout_ms;  /* deferred response not sent within: 503 and
                                 close (30 s); 0: no limit */
    size_t max_ws_message;    /* WebSocket message bytes, reassembled from its
                                 fragments; larger: close 1009 (1 MiB) */
    int ws_ping_ms;           /* WebSocket ping interval; a peer that has not
                                 answered a ping by the next one is closed
                                 (30 s); 0: no pings */
    int ws_close_timeout_ms;  /* after our close frame, the peer's close is
                                 awaited this long, then TCP closes (5 s) */
    bool request_ids;         /* X-Request-ID on every response (false) */
    bool metrics;             /* keep request metrics (false; also set by
                                 appsrv_route_metrics()) */
    appsrv_event_cb on_event; /* NULL: operational events are dropped */
    void *on_event_user;
    /* Graceful stop as load balancers expect it (see "Deployment"). */
    int drain_delay_ms;       /* after appsrv_server_stop(), keep accepting
                                 and serving this long while
                                 appsrv_server_draining() is true (0) */
    int drain_idle_grace_ms;  /* then idle keep-alive connections get this
                                 long to send one more request (answered
                                 with Connection: close) before a graceful
                                 close (250 ms) */
    bool sd_notify;           /* READY=1 at run, STOPPING=1 at stop, to
                                 $NOTIFY_SOCKET (false) */

    /* Fields below were added for deployment behind a load balancer. The
     * client is appsrv_req_client_addr()'s: the PROXY header's address on
     * a proxy_protocol listener; for requests also a trusted
     * X-Forwarded-For. IPv6 clients count by their /64. */
    int max_conns_per_client; /* open connections per client; one more is
                                 closed at once ("conn_refused" event);
                                 0: no limit (0) */
    double rate_limit;        /* requests per second per client, a token
                                 bucket; over it: 429 + Retry-After through
                                 the error responder; 0: none (0) */
    double rate_burst;        /* the bucket's size; 0: max(1, rate_limit) */
} appsrv_config_t;

/* Fills cfg with the defaults above. Any thread. */
APPSRV_API void appsrv_config_init(appsrv_config_t *cfg);

/*
 * Creates a server from cfg (copied; NULL means defaults). On success
 * *out owns a new server; free it with appsrv_server_free(); on failure
 * *out is NULL. Valid ranges: threads 1..1024, max_conns >= 1, max_head
 * 64 B..1 GiB, max_target 1..max_head, max_headers 1..65535, max_line
 * 1 B..1 GiB, max_body <= 1 TiB, head/idle/write timeouts >= 1 ms, drain
 * and response timeouts >= 0, max_ws_message 1 B..1 GiB, ws_ping_ms >= 0,
 * ws_close_timeout_ms >= 1. Returns 0, -EINVAL (out of range, out NULL),
 * -ENOMEM, or -EMFILE/-ENFILE (epoll/eventfd). Any thread.
 */
APPSRV_API int appsrv_server_new(appsrv_server_t **out, const appsrv_config_t *cfg);

/*
 * A handler. Return 0 when res is complete (the library sends it),
 * APPSRV_LATER to keep res and finish it later from any thread (see
 * "deferred responses and streaming" below), or a negative value: the
 * library answers 500. A handler that returns 0 without setting a status
 * also gets 500. req and res are valid until the response is sent.
 * Runs on a loop thread: it must not block.
 */
typedef int (*appsrv_handler_cb)(appsrv_req_t *req, appsrv_res_t *res, void *user);

#define APPSRV_LATER 1

/*
 * Registers handler for method (e.g. "GET"; NULL matches any) and an
 * HTTP path pattern: exact segments, ":name" segments that capture one
 * segment, and a trailing "*" that matches the rest (also nothing).
 * Both strings are copied. Specific beats general: for a path, exact
 * segments win over ":name", which wins over "*". A GET route also
 * answers HEAD (body suppressed). An unknown path gets 404, a known
 * path with another method 405 + Allow.
 * At most 8 captures per pattern, names unique.
 * Returns 0, -EINVAL (bad pattern or method, NULL srv/pattern/handler),
 * -EEXIST (same method and same pattern shape: "/u/:id" and "/u/:name"
 * collide), -ENOMEM, APPSRV_ESTATE once run has started. Call before
 * appsrv_server_run(); any thread.
 */
APPSRV_API int appsrv_route(appsrv_server_t *srv, const char *method, const char *pattern,
                            appsrv_handler_cb handler, void *user);

/*
 * Registers handler for a line-protocol command word (e.g. "PING";
 * case-sensitive, no spaces). The request's method and path are the word,
 * its body the rest of the line after one space. Unknown words get
 * "404 Not Found". The response's status, reason and body become one line
 * "CODE REASON[ BODY]\n"; a body or reason holding CR or LF would break
 * that framing, so it is answered "500 Internal Server Error" instead. Returns 0, -EINVAL, -EEXIST, -ENOMEM, APPSRV_ESTATE
 * once run has started. Before run; any thread.
 */
APPSRV_API int appsrv_route_line(appsrv_server_t *srv, const char *command,
                                 appsrv_handler_cb handler, void *user);

/*
 * Listens for HTTP (or line protocol) on host:port (port 0: a free port,
 * one socket that every worker watches with EPOLLEXCLUSIVE). Returns the
 * bound port (> 0) or a negative error as appsrv_listen(), -ENOSPC beyond
 * 8 listeners, APPSRV_ESTATE once run has started. Before run; any thread.
 */
APPSRV_API int appsrv_listen_http(appsrv_server_t *srv, const char *host, int port);
APPSRV_API int appsrv_listen_line(appsrv_server_t *srv, const char *host, int port);

/* -------------------------------------------------------------------- TLS */
/*
 * HTTPS: a TLS context made from PEM files, attached to one or more
 * listeners with appsrv_listen_https(). OpenSSL 3 is an optional build
 * dependency: in a build without it (make TLS=no) every function here
 * exists but fails with -ENOTSUP (appsrv_tls_available() says which).
 *
 * Defaults (appsrv_tls_config_init()) pass iOS App Transport Security
 * and OkHttp's MODERN_TLS: TLS 1.2 minimum and TLS 1.3; for TLS 1.2 only
 * ECDHE key exchange with AES-GCM or ChaCha20-Poly1305, the server's
 * order (ChaCha20 first for clients that prefer it: phones without AES
 * instructions); no renegotiation (RFC 5746 is moot), no compression;
 * ALPN "http/1.1" (RFC 7301; a client offering only other protocols gets
 * no ALPN answer rather than a failed handshake); session tickets whose
 * key rotates every ticket_key_seconds (RFC 5077, RFC 8446 §4.6.1).
 * Change them through appsrv_tls_config_t before appsrv_tls_new().
 */
typedef struct appsrv_tls appsrv_tls_t;

#define APPSRV_TLS1_2 0x0303
#define APPSRV_TLS1_3 0x0304

typedef struct appsrv_tls_config {
    int min_version;          /* APPSRV_TLS1_2 (default) or APPSRV_TLS1_3 */
    const char *ciphers;      /* TLS 1.2 suites, OpenSSL cipher-list syntax;
                                 NULL: the ECDHE AES-GCM/ChaCha20 list */
    const char *ciphersuites; /* TLS 1.3 suites, OpenSSL syntax; NULL:
                                 TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384,
                                 TLS_CHACHA20_POLY1305_SHA256 */
    const char *groups;       /* key exchange groups; NULL: X25519:P-256:P-384 */
    int ticket_key_seconds;   /* session ticket key lifetime (3600); a ticket
                                 is accepted for two lifetimes; 0: no tickets,
                                 a server-side session cache instead */
} appsrv_tls_config_t;

/* True when the library was built with TLS (OpenSSL). Any thread. */
APPSRV_API bool appsrv_tls_available(void);

/* Fills cfg with the defaults above. Any thread. */
APPSRV_API void appsrv_tls_config_init(appsrv_tls_config_t *cfg);

/*
 * Creates a TLS context whose default certificate is the PEM chain in
 * cert_file (leaf first, then intermediates) with the PEM private key in
 * key_file (encrypted keys take passphrase; NULL: none). cfg is copied
 * (NULL: defaults); the file names and passphrase are kept for
 * appsrv_tls_reload(). On success *out owns the context: free it with
 * appsrv_tls_free() after every server using it was freed. Returns 0,
 * -EINVAL (NULL argument, bad min_version), -ENOENT/-EACCES (a file),
 * APPSRV_ETLSCERT, APPSRV_ETLSKEY (unreadable, wrong passphrase, or not
 * the certificate's key), APPSRV_ETLSCONF (a cipher or group string
 * OpenSSL rejects), -ENOMEM, or -ENOTSUP without TLS. Any thread.
 */
APPSRV_API int appsrv_tls_new(appsrv_tls_t **out, const appsrv_tls_config_t *cfg,
                              const char *cert_file, const char *key_file,
                              const char *passphrase);

/*
 * Adds a certificate chosen when the client's SNI server name (RFC 6066
 * §3) is name: an exact host name, or "*.example.com" for one label
 * under example.com; compared case-insensitively. Clients sending no
 * name or an unknown one get the default certificate. Later additions
 * of the same name replace earlier ones. Same file rules and returns as
 * appsrv_tls_new() (-EINVAL also for an empty or over-long name). Any
 * thread, also while servers run: new handshakes see it.
 */
APPSRV_API int appsrv_tls_add_sni(appsrv_tls_t *tls, const char *name, const char *cert_file,
                                  const char *key_file, const char *passphrase);

/*
 * Re-reads every certificate and key file of tls (the default and each
 * SNI entry). All or nothing: when every file loads, new handshakes use
 * the new certificates at once (an atomic swap) while established
 * connections keep theirs; when any fails, nothing changes and the error
 * of the first failure is returned (as appsrv_tls_new()). Session
 * tickets issued before stay valid. Any thread, while servers run.
 */
APPSRV_API int appsrv_tls_reload(appsrv_tls_t *tls);

/* Frees tls. Only once no server that listens with it exists (after
 * appsrv_server_free()). NULL is a no-op. Any thread. */
APPSRV_API void appsrv_tls_free(appsrv_tls_t *tls);

/*
 * Listens for HTTPS on host:port: HTTP/1.1 over TLS with tls (not
 * copied: it must outlive the server). The handshake counts against
 * head_timeout_ms and max_conns like a request head. Returns as
 * appsrv_listen_http(), and -EINVAL (tls NULL) or -ENOTSUP without TLS.
 * Before run; any thread.
 */
APPSRV_API int appsrv_listen_https(appsrv_server_t *srv, const char *host, int port,
                                   appsrv_tls_t *tls);

/*
 * Writes the access log to fd (a file opened with O_APPEND, a pipe,
 * stderr) in format, off the request path: each worker appends formatted
 * lines to its own 64 KiB buffer and writes it when it passes 32 KiB, and
 * at most 100 ms after its first unwritten line (a loop timer); a
 * graceful stop writes what is left before appsrv_server_run() returns,
 * so no line is lost. Each write holds whole lines. fd is not closed by
 * the library and must stay open until appsrv_server_free(). Works with
 * an access_log callback too (both get every entry). Returns 0, -EINVAL
 * (bad fd or format), -ENOMEM, APPSRV_ESTATE once run has started (or a
 * log was set already). Before run; any thread.
 */
APPSRV_API int appsrv_access_log_fd(appsrv_server_t *srv, int fd, appsrv_log_format_t format);

/* As appsrv_access_log_fd() on path, opened (created 0644) with O_APPEND
 * and closed by appsrv_server_free(). Returns also -errno from open(2). */
APPSRV_API int appsrv_access_log_file(appsrv_server_t *srv, const char *path,
                                      appsrv_log_format_t format);

/*
 * Turns metrics on and registers a GET route on pattern that answers them
 * in the Prometheus text format 0.0.4 (appsrv_metrics_format()). Returns
 * as appsrv_route(). Before run; any thread.
 */
APPSRV_API int appsrv_route_metrics(appsrv_server_t *srv, const char *pattern);

/*
 * Writes the server's metrics in the Prometheus text exposition format
 * 0.0.4 into a new NUL-terminated buffer (*out, the caller frees it):
 * workers' counters summed at call time (each worker keeps its own,
 * without locks), requests by route pattern and status class, a latency
 * histogram, bytes, connections by protocol, refusals, protocol errors by
 * status, timeouts by kind, deferred responses in flight, and process_*
 * from /proc. Request metrics need cfg.metrics (or
 * appsrv_route_metrics()); the others are always kept. Returns the length
 * or -ENOMEM, -EINVAL. Any thread, while srv exists.
 */
APPSRV_API ssize_t appsrv_metrics_format(appsrv_server_t *srv, char **out);

/*
 * Runs the workers; the calling thread becomes worker 0 (the threads it
 * starts block all signals, so signals reach the caller). Blocks until
 * appsrv_server_stop(), then returns 0 after the drain; or a negative
 * error if it cannot start (-EINVAL: no listener; APPSRV_ESTATE: already
 * ran; -errno: a worker could not start). One thread, once per server.
 */
APPSRV_API int appsrv_server_run(appsrv_server_t *srv);

/*
 * Asks the server to stop: no new connections, requests in flight are
 * finished (bounded by drain_timeout_ms), idle connections closed, then
 * appsrv_server_run() returns. Async-signal-safe; any thread; repeatable.
 * Before run, it makes the next run return at once (after
 * cfg.drain_delay_ms). With a drain delay, accepting goes on for that long
 * first, and a second call ends the delay; idle keep-alive connections get
 * cfg.drain_idle_grace_ms for one more request (see "Deployment").
 */
APPSRV_API void appsrv_server_stop(appsrv_server_t *srv);

/* Frees the server (after run returned, or if it never ran). NULL is a
 * no-op. Any thread, but not concurrently with any other call on srv. */
APPSRV_API void appsrv_server_free(appsrv_server_t *srv);

/* ------------------------------------------------------ request accessors */
/* All: on the thread running the handler; for an APPSRV_LATER response,
 * on the one thread holding req until the response is finished (never
 * concurrently). Views are valid until the response is sent; copy to keep.
 * name arguments must not be NULL. For a line request: method and path
 * are the command word, target is empty, query absent, no headers, the
 * body is the rest of the line, minor is 0. */

APPSRV_API appsrv_proto_t appsrv_req_proto(const appsrv_req_t *req);
APPSRV_API appsrv_str_t appsrv_req_method(const appsrv_req_t *req);
/*
 * The request target as sent, e.g. "/a/b?x=1" or, absolute-form,
 * "http://a.example/a/b?x=1", but without a "#fragment": a fragment is
 * dropped before routing (RFC 9110 §7.1: not part of the target URI), here
 * and from the path and query below. A target holds visible ASCII only
 * (0x21-0x7E: '"', '\', '|', '{', ... included); other bytes are a 400.
 */
APPSRV_API appsrv_str_t appsrv_req_target(const appsrv_req_t *req);
/* The path of the target (raw, not decoded), e.g. "/a/b"; "/" for an
 * absolute-form target with an empty path. Any visible ASCII byte but '?'
 * and '#' (a '\' is no separator); its %-escapes are well-formed (a
 * malformed one is a 400 before any handler). */
APPSRV_API appsrv_str_t appsrv_req_path(const appsrv_req_t *req);
/* The raw query after '?', without it (and without a fragment); ptr NULL
 * when there is no '?'. %-escapes are not checked here. */
APPSRV_API appsrv_str_t appsrv_req_query(const appsrv_req_t *req);
/* HTTP minor version (0 or 1); 0 for line requests. */
APPSRV_API int appsrv_req_http_minor(const appsrv_req_t *req);

/*
 * Decodes query parameter name ("%XX" and '+' as space) into buf
 * (NUL-terminated). Returns the decoded length, -ENOENT when absent,
 * -ENOSPC when buf is too small (a cap of query length + 1 always fits).
 * A parameter given without '=' has the value "". -EINVAL (buf set to "")
 * for a '%' not followed by two hex digits in the value, as
 * appsrv_pct_decode(): the server does not refuse such a query, the
 * handler decides (e.g. a 400 of its own).
 */
APPSRV_API ssize_t appsrv_req_query_param(const appsrv_req_t *req, const char *name, char *buf,
                                          size_t cap);

/* The raw value captured by ":name" in the matched route pattern, or the
 * rest of the path for name "*". ptr NULL when absent. */
APPSRV_API appsrv_str_t appsrv_req_param(const appsrv_req_t *req, const char *name);

/* The first header field named name (ASCII case-insensitive), value with
 * surrounding whitespace removed. ptr NULL when absent. For an
 * absolute-form target (RFC 9112 §3.2.2) the Host field's value is the
 * target's authority (host[:port]), here and in appsrv_req_header_at(). */
APPSRV_API appsrv_str_t appsrv_req_header(const appsrv_req_t *req, const char *name);

/* Header fields in order: count, then each by index. Returns 0 or -ERANGE. */
APPSRV_API size_t appsrv_req_header_count(const appsrv_req_t *req);
APPSRV_API int appsrv_req_header_at(const appsrv_req_t *req, size_t i, appsrv_str_t *name,
                                    appsrv_str_t *value);

/* The whole request body (de-chunked); empty (len 0) when there is none. */
APPSRV_API appsrv_str_t appsrv_req_body(const appsrv_req_t *req);

/* The client's address. */
APPSRV_API const appsrv_addr_t *appsrv_req_peer(const appsrv_req_t *req);

/*
 * TLS facts of the request's connection. appsrv_req_is_tls() is true for
 * a request that came over HTTPS. The others return static or
 * connection-owned strings, ptr NULL for a cleartext connection:
 * the protocol version ("TLSv1.3", "TLSv1.2"), the cipher suite's OpenSSL
 * name ("TLS_AES_128_GCM_SHA256"), and the SNI server name the client
 * sent (RFC 6066 §3; ptr NULL when it sent none). Loop thread, inside
 * the handler only (the connection owns them: for a deferred response,
 * copy them before returning APPSRV_LATER).
 */
APPSRV_API bool appsrv_req_is_tls(const appsrv_req_t *req);
APPSRV_API appsrv_str_t appsrv_req_tls_version(const appsrv_req_t *req);
APPSRV_API appsrv_str_t appsrv_req_tls_cipher(const appsrv_req_t *req);
APPSRV_API appsrv_str_t appsrv_req_tls_sni(const appsrv_req_t *req);

/*
 * The request's ID (cfg.request_ids): the client's X-Request-ID when it is
 * 1..128 bytes of [A-Za-z0-9._-], else 32 lowercase hex digits (128
 * random bits) made by the worker. The same value goes out in the
 * response's X-Request-ID field and in the access log. ptr NULL when
 * request IDs are off.
 */
APPSRV_API appsrv_str_t appsrv_req_id(const appsrv_req_t *req);

/* ----------------------------------------------------- response builders */
/* All: inside the handler, or for an APPSRV_LATER response on the one
 * thread holding res until appsrv_res_send()/appsrv_res_end() (never
 * concurrently). A handler's negative return discards what was set. */

/*
 * Sets the status (200..999; 1xx interim responses are the library's; 204
 * and 304 carry no body and no Content-Length) and the reason phrase
 * (copied; NULL or never set: the standard phrase, or the class phrase
 * such as "Client Error" for codes without one). Returns 0 or -EINVAL (out
 * of range, or a reason with control bytes), -ENOMEM.
 */
APPSRV_API int appsrv_res_set_status(appsrv_res_t *res, int status);
APPSRV_API int appsrv_res_set_reason(appsrv_res_t *res, const char *reason);

/*
 * Adds a header field (both copied; ignored on line requests). Returns 0,
 * -EINVAL for a name that is not a token or a value with a control byte
 * other than tab (CR/LF: header injection) or a
 * name the library manages (Content-Length, Transfer-Encoding, Date,
 * Server, Connection), -ENOSPC beyond 8 KiB of headers, -ENOMEM.
 */
APPSRV_API int appsrv_res_add_header(appsrv_res_t *res, const char *name, const char *value);

/* Sets the body to a copy of data[0..len). Replaces any earlier body.
 * Returns 0 or -ENOMEM. */
APPSRV_API int appsrv_res_set_body(appsrv_res_t *res, const void *data, size_t len);

/* Appends a copy of data to the body. Returns 0 or -ENOMEM. */
APPSRV_API int appsrv_res_append(appsrv_res_t *res, const void *data, size_t len);

/* Appends printf-style text to the body. Returns the bytes added or
 * -ENOMEM / -EINVAL. */
APPSRV_API int appsrv_res_printf(appsrv_res_t *res, const char *fmt, ...) APPSRV_PRINTF(2, 3);

/*
 * Sets the body to data[0..len) without copying. The library calls
 * free_cb(data, ud) (when not NULL) exactly once, on the loop thread:
 * after the bytes are sent, when the connection is gone, when the
 * response is discarded (500, HEAD), or at once when a later set_body/
 * append/printf replaces the body. Until then data must stay valid and
 * unchanged. Replaces any earlier body. Returns 0.
 * data may point into the request (e.g. appsrv_req_body()): request
 * memory lives until the response is sent.
 */
APPSRV_API int appsrv_res_set_body_ref(appsrv_res_t *res, const void *data, size_t len,
                                       void (*free_cb)(void *data, void *ud), void *ud);

/* ------------------------------------- deferred responses and streaming */
/*
 * Life cycle. A handler that returns APPSRV_LATER keeps res (and req: both
 * stay valid, even after the client is gone) until it finishes res exactly
 * once, from any thread, with appsrv_res_send() (a whole response) or, for
 * a stream, appsrv_res_end(). After that call neither may be touched.
 * Requests behind it on the same connection (pipelined) wait, and are
 * answered in order. If the client disconnects (a FIN counts: a client
 * that half-closes after its request cancels a deferred response, as with
 * nginx's 499), or response_timeout_ms
 * passes first (the client then gets 503), the cancel callback runs on the
 * loop thread and later calls return APPSRV_ECANCELED; the host must still
 * finish res. Order: no call on res reports APPSRV_ECANCELED before the
 * cancel callback has returned (a call made from another thread while it
 * runs waits for it), so a host may free its context on that answer. appsrv_server_run() returns only after every deferred
 * response has been finished: a stop cancels those still waiting.
 */

typedef void (*appsrv_res_cb)(appsrv_res_t *res, void *ud);

/*
 * Finishes a deferred response with the status, headers and body set on
 * res. Any thread (the handler may also hand res to another thread that
 * finishes it before the handler returns APPSRV_LATER). Returns 0,
 * APPSRV_ECANCELED (the client is gone: res is released all the same), or
 * APPSRV_ESTATE (already finished, or streaming: use appsrv_res_end).
 */
APPSRV_API int appsrv_res_send(appsrv_res_t *res);

/*
 * Loop thread, inside the handler.
 * Sets the callback run (on the loop thread, at most once) when the client
 * goes away or the response times out before res is finished. Call it in
 * the handler, before returning APPSRV_LATER. The callback must not block;
 * it may call appsrv_res_send()/appsrv_res_end().
 */
APPSRV_API void appsrv_res_on_cancel(appsrv_res_t *res, appsrv_res_cb cb, void *ud);

/*
 * Loop thread, inside the handler.
 * Sets the callback run (on the loop thread, at most once) when the server
 * begins a graceful stop (appsrv_server_stop()) while res is still held:
 * the stop notification. The response still works: a stream can send its
 * last event and call appsrv_res_end(), so clients see a clean end instead
 * of a cut at the drain timeout. Runs at once if the stop began before the
 * handler returned APPSRV_LATER. Must not block.
 */
APPSRV_API void appsrv_res_on_stop(appsrv_res_t *res, appsrv_res_cb cb, void *ud);

/*
 * Starts a streamed response of unknown length: the status line and
 * headers go out at once, the body follows with appsrv_res_write(), sent
 * chunked to HTTP/1.1 clients and close-delimited to HTTP/1.0 ones.
 * Status 200 when none was set; set headers before this call.
 * Call in the handler (then return APPSRV_LATER) or later from any thread.
 * Returns 0, APPSRV_ECANCELED, or APPSRV_ESTATE (line protocol, or already
 * streaming/finished).
 */
APPSRV_API int appsrv_res_stream(appsrv_res_t *res);

/*
 * Queues a copy of data on a stream. Any thread. Memory is bounded: when
 * more than 256 KiB wait unsent, nothing is copied and -EAGAIN is returned;
 * the drain callback then says when to write again. Returns 0, -EAGAIN,
 * APPSRV_ECANCELED, APPSRV_ESTATE (not streaming, or ended), -ENOMEM, or
 * APPSRV_ENOBODY when the status is 204 or 304 (RFC 9110 §15.3.5, §15.4.5:
 * such a response has no content; nothing is sent). For a HEAD request
 * data is accepted (0) and dropped, as the GET answer's body would be.
 */
APPSRV_API int appsrv_res_write(appsrv_res_t *res, const void *data, size_t len);

/* Sets the callback run on the loop thread when a stream that returned
 * -EAGAIN has drained below 64 KiB unsent. Any thread. */
APPSRV_API void appsrv_res_on_drain(appsrv_res_t *res, appsrv_res_cb cb, void *ud);

/* Ends a stream (the last chunk follows what was written). Any thread.
 * Returns 0 or APPSRV_ECANCELED (released all the same) or APPSRV_ESTATE. */
APPSRV_API int appsrv_res_end(appsrv_res_t *res);

/*
 * Starts a server-sent events stream (text/event-stream, no caching) like
 * appsrv_res_stream(). With heartbeat_ms > 0, a comment line is sent when
 * nothing else was sent for that long, keeping proxies and mobile radios
 * from dropping the connection. Same returns as appsrv_res_stream().
 */
APPSRV_API int appsrv_res_sse_begin(appsrv_res_t *res, int heartbeat_ms);

/*
 * Sends one event: "event:" (if event is not NULL), "id:" (if id is not
 * NULL), one "data:" line per line of data, then a blank line. event and
 * id must not hold CR or LF (-EINVAL). Same returns as appsrv_res_write().
 */
APPSRV_API int appsrv_res_sse_send(appsrv_res_t *res, const char *event, const char *id,
                                   const char *data);

/*
 * Closes the connection once this response is sent (HTTP: with
 * "Connection: close"; line protocol: after the response line).
 */
APPSRV_API void appsrv_res_close(appsrv_res_t *res);

/* -------------------------------------------------------------- WebSocket */
/*
 * WebSocket (RFC 6455) on HTTP listeners: appsrv_route_ws() makes a GET
 * route whose requests are opening handshakes. The library checks the
 * handshake (§4.2.1: GET, HTTP/1.1, Upgrade: websocket, Connection:
 * upgrade, Sec-WebSocket-Version: 13 - else 426 with the version it
 * speaks -, a valid Sec-WebSocket-Key), asks on_upgrade, answers 101 and
 * from then on speaks WebSocket on the connection: it reassembles
 * fragmented messages (at most max_ws_message bytes), validates text as
 * UTF-8, answers pings, runs the closing handshake, pings the peer every
 * ws_ping_ms and closes one that stops answering. No extension is
 * negotiated (permessage-deflate is declined, as RFC 7692 allows).
 *
 * Handle lifetime, one rule: an appsrv_ws_t is valid while you hold a
 * reference to it. on_open gives you one; appsrv_ws_hold() takes another;
 * appsrv_ws_release() drops one. Drop every reference you took, the one
 * from on_open included, exactly once, on any thread, at any time (in
 * on_close at the latest is usual). Besides, every callback may use the
 * handle it is given for its duration. A handle whose connection is gone
 * stays valid (its calls return APPSRV_ECLOSED) until the last reference
 * goes: a thread sending while the peer vanishes never touches freed
 * memory. appsrv_server_run() returns only after every reference has been
 * dropped.
 *
 * Callbacks run on the connection's loop thread, one at a time per
 * connection, in order: on_upgrade, on_open, on_message..., on_close.
 * Once on_upgrade has accepted, on_open and then on_close always follow,
 * exactly once each, whatever ends the connection (so state allocated in
 * on_upgrade and set with appsrv_ws_set_data() is freed in on_close).
 * They must not block. Broadcasting is a loop over the handles the host keeps (see
 * examples/ws_chat.c).
 */

typedef struct appsrv_ws appsrv_ws_t;

typedef enum appsrv_ws_type {
    APPSRV_WS_TEXT = 1,   /* UTF-8 text */
    APPSRV_WS_BINARY = 2, /* bytes */
} appsrv_ws_type_t;

typedef struct appsrv_ws_handlers {
    /*
     * The opening handshake is valid; req is the upgrade request (params,
     * query, headers, peer: authenticate here). ws is not open yet: only
     * appsrv_ws_select_protocol(), appsrv_ws_set_data() and
     * appsrv_ws_data() may be called on it, and only now. Headers added
     * to res go out with the answer. Return 0 to accept (101 Switching
     * Protocols), or an HTTP status 400..599 to refuse with it (res's
     * headers and body, or the standard reason as text); any other
     * value answers 500. NULL: every valid handshake is accepted.
     */
    int (*on_upgrade)(appsrv_ws_t *ws, appsrv_req_t *req, appsrv_res_t *res, void *user);
    /* The 101 is queued and ws is open; you hold one reference from now
     * on (see the rule above). Not NULL. */
    void (*on_open)(appsrv_ws_t *ws, void *user);
    /* A whole message: text is valid UTF-8; data is valid during the call
     * only (copy to keep); a NUL byte follows it (not counted in len).
     * NULL: messages are dropped. */
    void (*on_message)(appsrv_ws_t *ws, appsrv_ws_type_t type, const void *data, size_t len,
                       void *user);
    /* The connection is closed. code: the peer's close code (1005: its
     * close frame had none); the code this side failed the connection
     * with when the peer broke the protocol (1002, 1007 bad UTF-8, 1009
     * too big); or 1006 when no close frame came (the peer vanished or
     * stopped answering pings, a timeout or write stall, or the peer
     * never answered our close). reason: the peer's, UTF-8, may be empty,
     * valid during the call. Not NULL. */
    void (*on_close)(appsrv_ws_t *ws, int code, appsrv_str_t reason, void *user);
    /* A send that returned -EAGAIN: the backlog has fallen below 64 KiB.
     * May be NULL. */
    void (*on_drain)(appsrv_ws_t *ws, void *user);
} appsrv_ws_handlers_t;

/*
 * Registers a WebSocket endpoint on an HTTP path pattern (as
 * appsrv_route(), method GET; handlers are copied, user is passed to each
 * callback). A request on the path that is not a valid handshake gets
 * 400, or 426 (+ Upgrade: websocket, Sec-WebSocket-Version: 13) when it
 * is not a WebSocket upgrade or asks for another version. Returns 0,
 * -EINVAL (bad pattern, NULL srv, pattern, h, h->on_open or h->on_close),
 * -EEXIST, -ENOMEM, APPSRV_ESTATE once run has started. Before run; any
 * thread.
 */
APPSRV_API int appsrv_route_ws(appsrv_server_t *srv, const char *pattern,
                               const appsrv_ws_handlers_t *h, void *user);

/*
 * In on_upgrade only: selects protocol (Sec-WebSocket-Protocol, RFC 6455
 * §4.2.2) if the client offered it (exact match). Returns 0, -ENOENT (not
 * offered: nothing selected; try the next one), APPSRV_ESTATE outside
 * on_upgrade, -ENOMEM. Without a selection the 101 names no protocol.
 */
APPSRV_API int appsrv_ws_select_protocol(appsrv_ws_t *ws, const char *protocol);

/* The selected subprotocol (NUL-terminated, owned by ws), or NULL. While
 * you hold a reference; any thread. */
APPSRV_API const char *appsrv_ws_protocol(const appsrv_ws_t *ws);

/* The host's pointer for this connection (NULL until set). Set it in
 * on_upgrade or on_open; read it anywhere while you hold a reference. */
APPSRV_API void appsrv_ws_set_data(appsrv_ws_t *ws, void *data);
APPSRV_API void *appsrv_ws_data(const appsrv_ws_t *ws);

/* The peer's address. While you hold a reference; any thread. */
APPSRV_API const appsrv_addr_t *appsrv_ws_peer(const appsrv_ws_t *ws);

/*
 * Queues a copy of data[0..len) as one message of type. Any thread (while
 * you hold a reference, or inside a callback). Memory is bounded like a
 * stream's: when more than 256 KiB from earlier sends wait unsent,
 * nothing is copied and -EAGAIN is returned; on_drain then says when to
 * send again. Messages from one thread go out in the order sent. Returns
 * 0, -EAGAIN, -EINVAL (type not TEXT or BINARY, or text that is not
 * valid UTF-8), -ENOMEM, or APPSRV_ECLOSED (the connection is closing or
 * closed: appsrv_ws_close() was called, or a close frame arrived).
 */
APPSRV_API int appsrv_ws_send(appsrv_ws_t *ws, appsrv_ws_type_t type, const void *data,
                              size_t len);

/*
 * Starts the closing handshake (RFC 6455 §7.1.2): after what was already
 * queued, a close frame with code (1000..1003, 1007..1014 or 3000..4999)
 * and reason (UTF-8, at most 123 bytes; NULL for none); later sends
 * return APPSRV_ECLOSED. The TCP connection closes once the peer answers
 * or ws_close_timeout_ms passes; then on_close runs. Any thread. Returns
 * 0, -EINVAL, -ENOMEM, or APPSRV_ECLOSED (already closing or closed).
 */
APPSRV_API int appsrv_ws_close(appsrv_ws_t *ws, int code, const char *reason);

/* Takes one more reference to ws, for a thread that keeps the handle on
 * its own. Any thread, on a handle you hold a reference to (or inside a
 * callback). */
APPSRV_API void appsrv_ws_hold(appsrv_ws_t *ws);

/* Drops one reference; ws must not be used after the last one is gone.
 * Any thread, also inside a callback. */
APPSRV_API void appsrv_ws_release(appsrv_ws_t *ws);

/* ------------------------------------------------- timers and loop tasks */
/*
 * A worker's loop, for timers and tasks: appsrv_req_loop() inside a
 * handler (the request's own worker), appsrv_server_loop() by index.
 * Timers run their callback on that loop's thread, so a host needs no
 * thread of its own for delays, heartbeats or timeouts; from another
 * thread, appsrv_loop_post() a task that starts the timer there.
 */
typedef struct appsrv_loop appsrv_loop_t;
typedef struct appsrv_timer appsrv_timer_t;
typedef void (*appsrv_timer_cb)(appsrv_timer_t *t, void *user);
typedef void (*appsrv_task_cb)(appsrv_loop_t *loop, void *user);

/* Longest delay or period a timer takes (about 24.8 days). */
#define APPSRV_TIMER_MAX_MS 2147483647u

/* The loop running req's worker. Loop thread (or the thread holding req). */
APPSRV_API appsrv_loop_t *appsrv_req_loop(const appsrv_req_t *req);
/* Worker i's loop (0 <= i < threads), or NULL. Any thread. */
APPSRV_API appsrv_loop_t *appsrv_server_loop(appsrv_server_t *srv, int i);

/*
 * Creates a stopped timer on loop calling cb(t, user) on the loop thread.
 * Returns 0, -EINVAL, -ENOMEM, APPSRV_ESTATE once the loop has ended.
 * appsrv_timer_*: loop thread only (or before appsrv_server_run()).
 * Timers still allocated when the loop ends (run returned) are freed by
 * the library; do not touch them after that.
 */
APPSRV_API int appsrv_timer_new(appsrv_loop_t *loop, appsrv_timer_cb cb, void *user,
                                appsrv_timer_t **out);
/* (Re)arms t: first call after delay_ms, then every repeat_ms (0: once).
 * Millisecond resolution on the loop's clock. Returns 0, -EINVAL, -ENOMEM. */
APPSRV_API int appsrv_timer_start(appsrv_timer_t *t, uint64_t delay_ms, uint64_t repeat_ms);
/* Disarms t (no-op when not armed; fine from its own callback). */
APPSRV_API void appsrv_timer_stop(appsrv_timer_t *t);
/* True while t is armed. */
APPSRV_API bool appsrv_timer_active(const appsrv_timer_t *t);
/* Stops and frees t; from its own callback the memory goes when the
 * callback returns. NULL is a no-op. */
APPSRV_API void appsrv_timer_free(appsrv_timer_t *t);

/*
 * Runs cb(loop, user) once on loop's thread, soon (through the worker's
 * completion queue, which wakes the loop). Any thread. Returns 0,
 * -EINVAL, -ENOMEM, or APPSRV_ESTATE once the loop has ended (cb never
 * runs then; a task still queued when the loop ends is dropped unrun).
 */
APPSRV_API int appsrv_loop_post(appsrv_loop_t *loop, appsrv_task_cb cb, void *user);

/* ------------------------------------------------------------ middleware */
/*
 * Hooks around every HTTP request, on the request's loop thread, in the
 * order registered with appsrv_use():
 *   before(req, res, user), hook 0 first, after the head and body were read
 *   and before routing: return 0 to go on, APPSRV_DONE when res holds the
 *   answer (the chain and the handler are skipped: auth 401, rate limit
 *   429, CORS preflight 204), a negative value for a 500.
 *   after(req, res, user), last registered first, just before the head of
 *   ANY response goes out: handler answers, deferred ones (when sent),
 *   streams (at appsrv_res_stream(), before the head), before-hook answers
 *   and the library's own errors. It may add headers; it must not block
 *   or finish res. req is NULL for an error found before the head was
 *   parsed (400, 414, 431, 501, 505, a 408 mid-head).
 * Each hook owns one slot of per-request data (appsrv_req_data()), NULL at
 * the start of every request; a hook registered with neither callback just
 * reserves a slot for handlers. Cost: none registered, one branch per
 * request; otherwise an indirect call per callback. Line requests have no
 * hooks. The asterisk-form OPTIONS * is answered without them.
 */
#define APPSRV_DONE 2
#define APPSRV_MAX_HOOKS 8

typedef int (*appsrv_before_cb)(appsrv_req_t *req, appsrv_res_t *res, void *user);
typedef void (*appsrv_after_cb)(const appsrv_req_t *req, appsrv_res_t *res, void *user);

/* Registers a hook (either callback may be NULL). Returns its slot
 * (0..APPSRV_MAX_HOOKS-1), -EINVAL, -ENOSPC beyond APPSRV_MAX_HOOKS,
 * APPSRV_ESTATE once run has started. Before run; any thread. */
APPSRV_API int appsrv_use(appsrv_server_t *srv, appsrv_before_cb before, appsrv_after_cb after,
                          void *user);

/* A request's data in slot (from appsrv_use()): get (NULL when unset or
 * slot out of range) and set (-EINVAL out of range). The library never
 * frees it. Loop thread, or the thread holding req. */
APPSRV_API void *appsrv_req_data(const appsrv_req_t *req, int slot);
APPSRV_API int appsrv_req_set_data(appsrv_req_t *req, int slot, void *data);

/* ---------------------------------------------- the library's own answers */
/*
 * What the library answers on its own (400, 404, 405, 408, 413, 414, 415,
 * 431, 500, 501, 503, 505; and 503 for a deferred response that timed
 * out), as the error responder sees it.
 */
typedef struct appsrv_error {
    int status;
    const char *code;    /* stable: "not_found", "method_not_allowed",
                            "response_timeout", ... (appsrv_libappsrv.3) */
    const char *message; /* the reason phrase, e.g. "Not Found" */
    const appsrv_req_t *req; /* the parsed request, or NULL (head not parsed) */
    appsrv_str_t method, target; /* as far as parsed (ptr NULL: not) */
} appsrv_error_t;

/*
 * The error responder: res has the status set and nothing else; it may
 * add headers and set the body (e.g. JSON) and returns 0, or a negative
 * value to keep the library's text/plain answer. The status stays. The
 * library adds Allow (405) and Connection: close (when it closes) itself.
 * Loop thread; must not block or finish res.
 */
typedef int (*appsrv_error_cb)(const appsrv_error_t *err, appsrv_res_t *res, void *user);

/* Sets the error responder (NULL: the library's text answers). Returns 0,
 * -EINVAL, APPSRV_ESTATE once run has started. Before run; any thread. */
APPSRV_API int appsrv_set_error_responder(appsrv_server_t *srv, appsrv_error_cb cb, void *user);

/* A ready responder: {"error":{"status":404,"message":"Not Found"}} as
 * application/json. user is unused. */
APPSRV_API int appsrv_error_json(const appsrv_error_t *err, appsrv_res_t *res, void *user);

/* ------------------------------------------------------------------ CORS */
/*
 * CORS (Fetch standard, "CORS protocol") as a hook. For a request with an
 * Origin that is allowed: preflights (OPTIONS with
 * Access-Control-Request-Method) on any path that has routes are answered
 * 204 with the path's real methods (or the configured ones), allowed
 * headers and max-age; every other response (errors included) gets
 * Access-Control-Allow-Origin (the origin itself, or "*" when any origin
 * is allowed without credentials), -Allow-Credentials, -Expose-Headers.
 * Every response that depends on Origin says Vary: Origin. An origin that
 * is not allowed gets no CORS headers (the browser then refuses).
 */
typedef bool (*appsrv_origin_cb)(const char *origin, size_t len, void *user);

typedef struct appsrv_cors {
    const char *const *origins; /* exact "scheme://host[:port]" values, or
                                   "*" (any; not with credentials) */
    size_t norigins;
    appsrv_origin_cb allow_origin; /* or a predicate (tried after the list) */
    void *allow_origin_user;
    const char *methods;        /* preflight methods; NULL: the route's */
    const char *headers;        /* allowed request headers; NULL: echo the
                                   preflight's Access-Control-Request-Headers */
    const char *expose_headers; /* NULL: none */
    bool credentials;           /* Access-Control-Allow-Credentials: true */
    int max_age;                /* seconds, preflight cache; < 0: none */
} appsrv_cors_t;

/* Registers the CORS hook (the configuration and its strings are copied).
 * Returns the hook's slot, -EINVAL ("*" with credentials, nothing allowed),
 * -ENOMEM, -ENOSPC, APPSRV_ESTATE. Before run; any thread. */
APPSRV_API int appsrv_cors_use(appsrv_server_t *srv, const appsrv_cors_t *cors);

/* ------------------------------------------------- compression (gzip) */
/*
 * gzip content coding (RFC 9110 §8.4.1.3, §12.5.3) as an after hook.
 * zlib is an optional build dependency: in a build without it (make
 * ZLIB=no) appsrv_gzip_use() fails with -ENOTSUP (appsrv_gzip_available()
 * says which). A response is compressed when all of these hold:
 *   - the request's (first) Accept-Encoding field accepts gzip or x-gzip
 *     with a q-value above 0, directly or through "*";
 *   - its Content-Type is a compressible type (see types below);
 *   - its status is 2xx (not 204, not 206), 3xx (not 304), 4xx or 5xx;
 *   - it has no Content-Encoding and no Content-Range of its own, no
 *     protocol switch, and appsrv_res_no_compress() was not called;
 *   - a whole body has at least min_size bytes (a stream always qualifies).
 * It then gets Content-Encoding: gzip and the compressed Content-Length
 * (streams: compressed as they are written, each write flushed with
 * Z_SYNC_FLUSH so SSE events and other pieces reach the client at once).
 * Every response of a compressible type, compressed or not, gets Vary:
 * Accept-Encoding (RFC 9110 §12.5.5). A HEAD request gets the headers
 * the GET would (Content-Encoding and the compressed Content-Length; the
 * body is compressed to know that length, then not sent). Memory: a
 * stream owns one deflate state, released with the response; whole bodies
 * are compressed in the hook with one reused state per worker thread
 * (freed when the worker ends); none is held by a connection.
 */
typedef struct appsrv_gzip_opts {
    int level;       /* 1 (fastest) .. 9 (smallest); 0: 6 */
    size_t min_size; /* smallest whole body compressed; 0: 1024 bytes */
    /* Compressible media types, NULL-terminated; NULL: every text type,
     * application/json, application/javascript, application/xml,
     * image/svg+xml and any type ending in +json or +xml. An entry is an
     * exact type ("application/wasm"), a major type ("text/" then "*")
     * or a suffix ("+json"); compared case-insensitively, parameters
     * (";charset=...") ignored. */
    const char *const *types;
} appsrv_gzip_opts_t;

/* True when the library was built with zlib. Any thread. */
APPSRV_API bool appsrv_gzip_available(void);

/* Registers the gzip hook with opts (NULL: all defaults; copied). After
 * hooks run last registered first: register it before any hook that sets
 * Content-Type or Content-Encoding, so it sees them. Returns the hook's slot,
 * -EINVAL (level outside 0..9, an empty type), -ENOMEM, -ENOSPC,
 * APPSRV_ESTATE once run has started, -ENOTSUP without zlib. Before run;
 * any thread. */
APPSRV_API int appsrv_gzip_use(appsrv_server_t *srv, const appsrv_gzip_opts_t *opts);

/* Keeps res uncompressed (per response; for a whole route, call it in the
 * route's handler). Returns 0, or -EINVAL for NULL. The thread holding
 * res, before it is sent or streamed. */
APPSRV_API int appsrv_res_no_compress(appsrv_res_t *res);
/* ------------------------------------------------ files and static dirs */
/*
 * File responses (HTTP listeners). The body is read from an open file as
 * the socket drains: sendfile(2) on cleartext connections, pread into a
 * pooled block + write over TLS; a huge file to a slow client holds no
 * more memory than a small one. The fd belongs to res from the call on
 * (also when the call fails): the library closes it when the response
 * is written, dropped (HEAD, 304, an error), or its connection closes.
 * Call like the other builders (in the handler, or on the thread holding
 * an APPSRV_LATER response before appsrv_res_send()); not for streams.
 *
 * Validators: Last-Modified is the file's mtime (IMF-fixdate); the ETag
 * is strong, "<mtime seconds hex>.<mtime ns hex>-<size hex>": a file
 * rewritten with the same size within the same nanosecond would keep it.
 * Conditionals (RFC 9110 §13.2.2, in order): If-Match (strong) and else
 * If-Unmodified-Since -> 412; If-None-Match (list or "*", weak
 * comparison) -> 304 for GET/HEAD, and only without it If-Modified-Since
 * -> 304. Range (GET only, RFC 9110 §14.2): one "bytes=" range
 * (first-last, first-, -suffix) -> 206 + Content-Range; If-Range (an ETag,
 * compared strongly, or a date equal to Last-Modified) that does not match
 * -> the whole file; unsatisfiable -> 416 + "Content-Range: bytes
 * * /size"; several ranges -> the whole file, 200 (no multipart/byteranges);
 * a malformed Range is ignored (200). Every file answer says
 * Accept-Ranges: bytes.
 */

/* Sends len bytes of fd from offset off as the body (len < 0: up to the
 * end of the file); the status stays what was set (200 when none). No
 * validators, no Range. Returns 0, -EBADF (fd < 0), -EINVAL (off < 0,
 * off + len past the end, not a regular file), APPSRV_ESTATE (a line
 * request). fd is closed on every path. */
APPSRV_API int appsrv_res_fd(appsrv_res_t *res, int fd, off_t off, off_t len);

/* Answers req with the regular file fd (owned from here on), as described
 * above: sets status (200, 206, 304, 412 or 416), Content-Type
 * (content_type; NULL adds none, e.g. when the handler added its own),
 * Last-Modified, ETag, Accept-Ranges, Content-Range. req NULL: the
 * whole file, 200. Returns 0 (answered), -EISDIR (a directory),
 * -EINVAL (not a regular file), -errno from fstat; fd is closed on every
 * path, and on error res is unchanged. */
APPSRV_API int appsrv_res_file_fd(appsrv_res_t *res, const appsrv_req_t *req, int fd,
                                  const char *content_type);

/* Opens path (read-only; a FIFO or device is refused without blocking)
 * and answers as appsrv_res_file_fd() with appsrv_mime_type(path).
 * Returns 0, -ENOENT, -EACCES, -EISDIR, -EINVAL, or another -errno from
 * open/fstat; on error res is unchanged (the handler picks 404, 403...). */
APPSRV_API int appsrv_res_file(appsrv_res_t *res, const appsrv_req_t *req, const char *path);

/* The Content-Type for a file name by its extension (ASCII
 * case-insensitive): JSON, HTML, CSS, JS/mjs, images (png, jpeg, gif,
 * webp, avif, heic, svg, ico), video (mp4, webm, mov), audio (mp3, ogg,
 * wav, flac, m4a, opus), fonts (woff, woff2, ttf, otf), pdf, wasm, txt,
 * xml, csv, zip, gz; "application/octet-stream" for anything else. A
 * static string; never NULL. Any thread. */
APPSRV_API const char *appsrv_mime_type(const char *name);

typedef struct appsrv_static_opts {
    const char *index;  /* served for a directory path ending in '/';
                           NULL: "index.html" */
    bool precompressed; /* serve "<file>.gz" when it exists and the
                           client accepts gzip (Content-Encoding: gzip,
                           the original's type, Vary: Accept-Encoding) */
    int max_age;        /* > 0: Cache-Control: max-age=N; else none */
    bool no_cache;      /* no in-memory copies (see below) */
} appsrv_static_opts_t;

/*
 * Serves the directory root under the URL prefix (e.g. "/static", or "/"
 * for everything no more specific route takes) with GET and HEAD, through
 * appsrv_res_file_fd(). A path naming a directory without a trailing
 * slash is redirected (301) to the same path with one; with the slash its
 * index file is served, or 404: no listings. Refused with 404 (the same
 * answer as a missing file, so nothing leaks): ".." and "." segments,
 * empty segments ("//"), encoded '/', '\' or NUL (%2f, %5c, %00), a raw
 * '\', decoded bytes that are controls or not valid UTF-8 (overlong
 * forms such as %c0%ae), and anything that resolves outside root: files
 * are opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) below
 * root, so a symlink may point within root but not out of it; on kernels
 * without openat2 (before 5.6) each component is opened with O_NOFOLLOW,
 * and every symlink is refused. Non-regular files (FIFOs, devices) are
 * 404. Files up to 32 KiB are kept in memory (at most 64 per directory,
 * shared by the workers) and revalidated (open + fstat) when their copy
 * is a second old: a changed file may be served unchanged for up to one
 * second, as with nginx's open_file_cache_valid; opts->no_cache turns
 * this off. root is opened now (it must be a directory; renaming it later
 * does not move what is served); opts may be NULL (the defaults above,
 * precompressed off). Returns 0, -EINVAL (prefix not starting with '/',
 * NULL root), -ENOTDIR, -ENOENT, -EACCES (root), -EEXIST (a GET route
 * with that prefix exists), -ENOMEM, APPSRV_ESTATE once run has started.
 * Before run; any thread.
 */
APPSRV_API int appsrv_static(appsrv_server_t *srv, const char *prefix, const char *root,
                             const appsrv_static_opts_t *opts);
/* ---------------------------------------- routes that decide before the body */
/*
 * appsrv_route_ex() registers a route with options:
 *   on_head: runs on the loop thread as soon as the head is complete,
 *     before any body byte is read (and before "100 Continue": the 100
 *     goes out only when on_head accepts). req has the method, target,
 *     params, headers; not the body. Return 0 to accept, or an HTTP
 *     status 400..599 to refuse with it (res's headers and body, or the
 *     standard text): the body is never read; when one was announced the
 *     answer carries "Connection: close" and the connection closes after
 *     it with a lingering close (RFC 9112 §9.6), so a client with
 *     Expect: 100-continue never sends it. Any other value answers 500.
 *     appsrv_req_set_max_body() sets this request's limit here.
 *   max_body: this route's body limit, in place of cfg.max_body (0: the
 *     config's). A Content-Length over it is answered 413 before any
 *     body byte is read (and before 100 Continue).
 *   stream_body: the body is not buffered. The handler runs when the
 *     head is accepted, before the body, and takes the body as it
 *     arrives with appsrv_req_body_stream() (normally returning
 *     APPSRV_LATER and finishing res once the body ended, or earlier).
 *     Memory per upload is the connection's input block, whatever the
 *     body's size. A response finished before the body ended closes the
 *     connection after it (the rest is not read). appsrv_req_body() is
 *     empty on such routes.
 * Middleware before hooks run as for other routes (for stream_body
 * routes: before the handler, so before the body). Order: for a request
 * that announces a body (or sends Expect: 100-continue) on_head runs as
 * soon as the head is parsed, before the hooks; for one without a body
 * it runs after them, right before the handler. A graceful stop ends a
 * streamed body still arriving (or paused) with -ESHUTDOWN (see
 * appsrv_body_cb), then calls appsrv_res_on_stop() callbacks if res is
 * still unanswered.
 */
typedef struct appsrv_route_opts {
    appsrv_handler_cb on_head; /* NULL: accept every head */
    uint64_t max_body;         /* 0: cfg.max_body */
    bool stream_body;
} appsrv_route_opts_t;

/* As appsrv_route(), with opts (copied; NULL: none). Returns as
 * appsrv_route(). Before run; any thread. */
APPSRV_API int appsrv_route_ex(appsrv_server_t *srv, const char *method, const char *pattern,
                               appsrv_handler_cb handler, const appsrv_route_opts_t *opts,
                               void *user);

/* In on_head only: this request's body limit (bytes). Returns 0,
 * APPSRV_ESTATE outside on_head. */
APPSRV_API int appsrv_req_set_max_body(appsrv_req_t *req, uint64_t max);

/*
 * A piece of a streamed body, on the loop thread, in order: end 0 with
 * data[0..len) (len > 0; valid during the call only); then exactly one
 * last call with data NULL, len 0 and end 1 (the body ended: chunked
 * trailers too) or end < 0: -EMSGSIZE (over the limit; the rest is not
 * read: answer 413 unless the response head is out, in which case the
 * connection is cut), APPSRV_EPARSE (bad chunked framing), or
 * APPSRV_ECANCELED (the client left; the cancel callback follows), or
 * -ESHUTDOWN (a graceful stop began, appsrv_server_stop(): the rest is
 * not read; answer now, e.g. 503, and release what the body held; the
 * response still works and the connection closes after it; a paused
 * body gets it too, and a body whose handler runs once the drain has
 * begun gets it right after the handler returns).
 * Return 0 to go on, APPSRV_PAUSE to stop reading after this piece (the
 * socket is no longer read, so the TCP window closes) until
 * appsrv_req_body_resume(), or a negative value to stop for good (the
 * connection closes once the response is out). Must not block.
 */
#define APPSRV_PAUSE 3
typedef int (*appsrv_body_cb)(appsrv_req_t *req, const void *data, size_t len, int end,
                              void *ud);

/* In the handler of a stream_body route: hands the body to cb (ud goes
 * to each call). Without it the body is read and dropped. Returns 0, or
 * APPSRV_ESTATE (not a stream_body route, or not in its handler). */
APPSRV_API int appsrv_req_body_stream(appsrv_req_t *req, appsrv_body_cb cb, void *ud);

/* Resumes a body paused by APPSRV_PAUSE. Any thread, while the host
 * holds the request's response (before appsrv_res_send/end). Returns 0,
 * -EINVAL. A pause longer than idle_timeout_ms times the body out. */
APPSRV_API int appsrv_req_body_resume(appsrv_req_t *req);

/* ------------------------------------------ uploads: multipart, forms, cookies */
/*
 * multipart/form-data (RFC 7578 over RFC 2046 §5.1) as a streaming parser:
 * feed the body in pieces of any size (a boundary may be split anywhere);
 * each part's headers arrive in on_part, its content in on_data pieces,
 * its end in on_part_end. The preamble and the epilogue are ignored; the
 * CRLF before each boundary belongs to the boundary. Memory is fixed at
 * creation (max_header bytes twice), whatever the body's size. A parser
 * is used by one thread at a time; it has no thread of its own.
 */
typedef struct appsrv_multipart appsrv_multipart_t;

/* One part, as its headers describe it. Views are NUL-terminated, owned
 * by the parser, valid until on_part_end returns. */
typedef struct appsrv_part {
    appsrv_str_t name;         /* Content-Disposition name= (required) */
    appsrv_str_t filename;     /* filename=, quoted-pairs unescaped, otherwise
                                  as sent (browsers and Python requests write
                                  '"' as %22, the HTML5 way: not decoded
                                  here); ptr NULL when absent (a plain form
                                  field) */
    appsrv_str_t content_type; /* the part's Content-Type; ptr NULL when
                                  absent (RFC 7578 §4.4: text/plain) */
    unsigned index;            /* 0 for the first part */
} appsrv_part_t;

/* Callbacks (each may be NULL) return 0 to go on, or a negative value that
 * stops the parser: appsrv_multipart_feed() returns it. */
typedef struct appsrv_multipart_handlers {
    int (*on_part)(const appsrv_part_t *part, void *user);
    int (*on_data)(const appsrv_part_t *part, const void *data, size_t len, void *user);
    int (*on_part_end)(const appsrv_part_t *part, void *user);
    size_t max_parts;  /* more parts: -E2BIG (0: 128) */
    size_t max_header; /* bytes of one part's header block: beyond, -EMSGSIZE
                          (0: 8 KiB; at most 1 MiB) */
} appsrv_multipart_handlers_t;

/*
 * Copies the boundary parameter of a multipart/form-data Content-Type
 * value (quoted or not; 1..70 bchars, RFC 2046 §5.1.1) into buf
 * (NUL-terminated). Returns its length, -ENOENT (not multipart/form-data),
 * -EINVAL (no boundary, or a malformed one), -ENOSPC (cap too small; 71
 * always fits). Any thread.
 */
APPSRV_API int appsrv_multipart_boundary(appsrv_str_t content_type, char *buf, size_t cap);

/*
 * Creates a parser for a body whose Content-Type value is content_type
 * (h is copied; user goes to every callback). Returns 0, -EINVAL (NULL
 * out or h, bad boundary, max_header too big), -ENOENT (not
 * multipart/form-data), -ENOMEM. Free with appsrv_multipart_free().
 */
APPSRV_API int appsrv_multipart_new(appsrv_multipart_t **out, appsrv_str_t content_type,
                                    const appsrv_multipart_handlers_t *h, void *user);

/*
 * Feeds the next len bytes of the body. Returns 0, or the first error,
 * after which the parser refuses more (APPSRV_ESTATE): APPSRV_EPARSE (a
 * malformed body: boundary followed by other text, a bad part header, no
 * Content-Disposition: form-data or no name, a bare LF), -EMSGSIZE (part
 * headers over max_header), -E2BIG (over max_parts), or a callback's
 * negative value. appsrv_multipart_error() says which in words. Answer a
 * malformed body with 400.
 */
APPSRV_API int appsrv_multipart_feed(appsrv_multipart_t *mp, const void *data, size_t len);

/* The body has ended: returns the number of parts when the close
 * delimiter ("--boundary--") was seen, else APPSRV_EPARSE ("missing final
 * boundary"), or APPSRV_ESTATE after an earlier error. */
APPSRV_API int appsrv_multipart_finish(appsrv_multipart_t *mp);

/* The last error in words ("missing final boundary", "too many parts",
 * ...), static; "no error" when none. */
APPSRV_API const char *appsrv_multipart_error(const appsrv_multipart_t *mp);

/* NULL is a no-op. */
APPSRV_API void appsrv_multipart_free(appsrv_multipart_t *mp);

/*
 * A whole buffered body in one call (new, feed, finish, free). Returns
 * the number of parts or an error as above; *why (may be NULL) gets the
 * error in words (static). Any thread.
 */
APPSRV_API int appsrv_multipart_parse(appsrv_str_t content_type, appsrv_str_t body,
                                      const appsrv_multipart_handlers_t *h, void *user,
                                      const char **why);

/*
 * application/x-www-form-urlencoded fields, decoded as query parameters
 * are (the same decoder: "%XX", '+' as space; a field without '=' has the
 * value ""). appsrv_form_param() looks in any form text (e.g. a body
 * collected from a stream); appsrv_req_form_param() in the request's
 * buffered body, when its Content-Type is
 * application/x-www-form-urlencoded. Returns the decoded length, -ENOENT
 * (absent), -ENOSPC (cap too small; body length + 1 always fits), -EINVAL
 * (a malformed %-escape, buf set to ""), and -ENOMSG from
 * appsrv_req_form_param() when the body is not a form. Thread rule: as
 * the request accessors (appsrv_form_param: any thread).
 */
APPSRV_API ssize_t appsrv_form_param(appsrv_str_t form, const char *name, char *buf, size_t cap);
APPSRV_API ssize_t appsrv_req_form_param(const appsrv_req_t *req, const char *name, char *buf,
                                         size_t cap);

/*
 * Cookies (RFC 6265). appsrv_cookie_get() finds cookie name in a Cookie
 * header value ("a=1; b=2", §4.2.1; separators tolerated with or without
 * the space, names compared exactly) and returns its value without the
 * surrounding DQUOTEs of a quoted value; ptr NULL when absent. The view
 * lies in header. appsrv_req_cookie() looks in every Cookie field of req,
 * first match wins; the view is valid as the request's other views.
 */
APPSRV_API appsrv_str_t appsrv_cookie_get(appsrv_str_t header, const char *name);
APPSRV_API appsrv_str_t appsrv_req_cookie(const appsrv_req_t *req, const char *name);

typedef enum appsrv_samesite {
    APPSRV_SAMESITE_UNSET = 0, /* no SameSite attribute */
    APPSRV_SAMESITE_STRICT = 1,
    APPSRV_SAMESITE_LAX = 2,
    APPSRV_SAMESITE_NONE = 3, /* requires secure */
} appsrv_samesite_t;

/* A Set-Cookie to build (RFC 6265 §4.1). Zero-initialise, then set. */
typedef struct appsrv_cookie {
    const char *name;       /* a token (RFC 9110 §5.6.2), required */
    const char *value;      /* cookie-octets, optionally in DQUOTEs; NULL: "" */
    int64_t max_age;        /* seconds > 0: Max-Age; 0: none (a session
                               cookie); < 0: Max-Age=0 (delete it) */
    int64_t expires;        /* > 0: Expires, Unix seconds (IMF-fixdate) */
    const char *path;       /* Path; NULL: none */
    const char *domain;     /* Domain; NULL: none */
    bool secure;            /* Secure */
    bool http_only;         /* HttpOnly */
    appsrv_samesite_t same_site;
} appsrv_cookie_t;

/*
 * Formats c as a Set-Cookie value into buf (NUL-terminated). Returns its
 * length, -EINVAL (bad name or value, a Path or Domain with a control byte
 * or ';', a Domain that is not a host name, SameSite=None without Secure,
 * an unknown same_site), -ENOSPC. Any thread.
 */
APPSRV_API int appsrv_cookie_format(const appsrv_cookie_t *c, char *buf, size_t cap);

/* Adds the Set-Cookie header for c to res. Returns 0, the errors of
 * appsrv_cookie_format() (value at most 4 KiB) and of
 * appsrv_res_add_header(). Thread rule: as the response builders. */
APPSRV_API int appsrv_res_set_cookie(appsrv_res_t *res, const appsrv_cookie_t *c);
/* ------------------------------------------------------------ Deployment */
/*
 * Listening sockets made by someone else (systemd socket activation, a
 * supervisor such as start_server, a test), readiness notification and
 * the graceful stop's state.
 */

/*
 * Serves HTTP (line protocol, HTTPS with tls) on fd, a socket that is
 * already listening (SOCK_STREAM, listen() called; TCP or Unix). The
 * server makes it non-blocking and close-on-exec and owns it from a
 * successful return on (closes it when draining and at free); on failure
 * fd stays the caller's, untouched. Returns the bound TCP port (> 0), 0
 * for a Unix socket, -EBADF (not an open fd), -ENOTSOCK (not a socket),
 * -EINVAL (not a stream socket, or not listening), -ENOSPC beyond 8
 * listeners, APPSRV_ESTATE once run has started; https also -EINVAL (tls
 * NULL) and -ENOTSUP without TLS. Before run; any thread.
 */
APPSRV_API int appsrv_listen_http_fd(appsrv_server_t *srv, int fd);
APPSRV_API int appsrv_listen_line_fd(appsrv_server_t *srv, int fd);
APPSRV_API int appsrv_listen_https_fd(appsrv_server_t *srv, int fd, appsrv_tls_t *tls);

#define APPSRV_INHERITED_MAX 16

typedef struct appsrv_inherited_fd {
    int fd;         /* the inherited descriptor (close-on-exec now set) */
    char name[128]; /* systemd: FileDescriptorName= ("unknown" if none);
                       start_server: the address ("8080",
                       "127.0.0.1:8080", a Unix path) */
} appsrv_inherited_fd_t;

typedef struct appsrv_inherited {
    int n;              /* descriptors in fds[] */
    const char *source; /* "systemd", "server_starter", or NULL (none) */
    appsrv_inherited_fd_t fds[APPSRV_INHERITED_MAX];
} appsrv_inherited_t;

/*
 * Reads the listening sockets the process inherited, without libsystemd:
 * systemd's socket activation (sd_listen_fds(3): LISTEN_PID must equal
 * getpid(), else they are someone else's and ignored; LISTEN_FDS
 * descriptors from 3; LISTEN_FDNAMES, one colon-separated name each),
 * else Server::Starter's SERVER_STARTER_PORT ("addr=fd;addr=fd").
 * Sets close-on-exec on each and unsets LISTEN_PID, LISTEN_FDS and
 * LISTEN_FDNAMES (so children do not take them). The descriptors are the
 * caller's (hand them to appsrv_listen_*_fd()). Returns the number found
 * (0: none), -EINVAL (malformed variable, or names not one per fd),
 * -E2BIG (more than APPSRV_INHERITED_MAX), -ENAMETOOLONG, -EBADF (a
 * descriptor that is not open). Changes the environment: call before
 * starting threads.
 */
APPSRV_API int appsrv_inherited_fds(appsrv_inherited_t *out);

/*
 * Sends state (e.g. "READY=1", "STOPPING=1", newline-separated
 * assignments as in sd_notify(3)) as one datagram to the Unix socket
 * named by $NOTIFY_SOCKET (a path, or "@name" for the abstract
 * namespace). Returns 1 when sent, 0 when NOTIFY_SOCKET is unset,
 * -EINVAL (state empty, bad address), or the sendto() error. With
 * cfg.sd_notify the server sends READY=1 once its listeners are watched
 * and STOPPING=1 when a stop begins, and reports a failure as the
 * "notify_error" event. Any thread.
 */
APPSRV_API int appsrv_sd_notify(const char *state);

/*
 * True from appsrv_server_stop() on: a readiness endpoint answers 503 so
 * load balancers take the server out of rotation while it still serves
 * for cfg.drain_delay_ms (the CLI's GET /ready). Any thread.
 */
APPSRV_API bool appsrv_server_draining(const appsrv_server_t *srv);
/* ---------------------------------------------- behind a load balancer */
/*
 * Listener options. The PROXY protocol (haproxy's
 * proxy-protocol.txt, versions 1 and 2, both accepted on the same
 * listener) lets a load balancer in front tell the server who the client
 * is: a header before the client's first byte, before the TLS ClientHello
 * on an HTTPS listener. On a listener with proxy_protocol, every
 * connection must start with a valid header within head_timeout_ms; a
 * missing, malformed or oversized header (a v1 line over 107 bytes, a v2
 * header over 528 bytes, a datagram family) closes the connection
 * without an answer (it is not HTTP, and guessing would let any client
 * forge its address): a "protocol_error" event is reported. A v2 LOCAL
 * header (the proxy's health checks), v1 UNKNOWN and v2 unspecified or
 * AF_UNIX families keep the socket's addresses. Only turn it on for a
 * port that only the proxy can reach.
 */
typedef struct appsrv_listen_opts {
    appsrv_proto_t proto; /* APPSRV_PROTO_HTTP (also 0) or APPSRV_PROTO_LINE */
    appsrv_tls_t *tls;    /* HTTPS when set (HTTP only; not copied: it must
                             outlive the server); -ENOTSUP without TLS */
    bool proxy_protocol;  /* expect a PROXY protocol v1 or v2 header */
} appsrv_listen_opts_t;

/*
 * Listens on host:port as opts says (NULL: plain HTTP, as
 * appsrv_listen_http()). Returns as appsrv_listen_http(), and -EINVAL
 * for an unknown proto or tls on a line listener. Before run; any thread.
 */
APPSRV_API int appsrv_listen_opts(appsrv_server_t *srv, const char *host, int port,
                                  const appsrv_listen_opts_t *opts);

/*
 * Listener options on an inherited socket: as appsrv_listen_opts() on fd,
 * a socket that is already listening (systemd socket activation,
 * start_server, appsrv_inherited_fds()), with the checks, ownership and
 * returns of appsrv_listen_http_fd() (-EBADF, -ENOTSOCK, -EINVAL: not a
 * listening stream socket; fd stays the caller's on failure), and
 * -EINVAL for an unknown proto or tls on a line listener. So a server
 * behind a proxy can take the PROXY protocol on a socket it inherited.
 * Before run; any thread.
 */
APPSRV_API int appsrv_listen_opts_fd(appsrv_server_t *srv, int fd,
                                     const appsrv_listen_opts_t *opts);

/*
 * Trusted proxies: cidrs is "CIDR[,CIDR...]" (IPv4 and IPv6, e.g.
 * "10.0.0.0/8,::1/128"; an address alone is one host; copied). When a
 * request's peer (or the address its PROXY header reported) lies in one
 * of them, its X-Forwarded-For fields (several combine, in order) are
 * read right to left, skipping trusted addresses: the first untrusted one
 * is the client; a malformed element stops the walk (the last good one
 * is the client); a chain of trusted ones only gives its leftmost. The
 * last X-Forwarded-Proto element ("http" or "https") then sets
 * appsrv_req_scheme(). From any other peer both fields are ignored.
 * Calling again replaces the list. Returns 0, -EINVAL (NULL, empty or a
 * bad item: address or prefix length), -ENOMEM, APPSRV_ESTATE once run
 * has started. Before run; any thread.
 */
APPSRV_API int appsrv_trust_proxy(appsrv_server_t *srv, const char *cidrs);

/*
 * The request's client: the trusted X-Forwarded-For client (above), else
 * the address a PROXY header reported, else the socket peer
 * (appsrv_req_peer(), which stays the proxy's address). The access log's
 * client is the same (the combined format's host; JSON has "client" and
 * "peer"). The pointer is valid until the next call on req or the end of
 * the request. Inside the handler, or while the response is held, on the
 * thread that holds it.
 */
APPSRV_API const appsrv_addr_t *appsrv_req_client_addr(const appsrv_req_t *req);

/* "https" or "http": how the client reached us. HTTPS listeners say
 * "https", others "http", unless a trusted proxy's X-Forwarded-Proto
 * says otherwise (appsrv_trust_proxy()). Same rules as above. */
APPSRV_API appsrv_str_t appsrv_req_scheme(const appsrv_req_t *req);

#ifdef __cplusplus
}
#endif

#endif /* APPSRV_H */
