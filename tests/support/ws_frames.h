/* SPDX-License-Identifier: MIT */
/*
 * ws_frames.h - raw WebSocket frames for the tests: a builder for client
 * frames with any header bits, masked or not, and a growing byte string
 * of frames. Pure memory, no I/O; used by test_ws_parse.c (decoder rows)
 * and ws_client.c (frames on the wire).
 */
#ifndef APPSRV_TEST_WS_FRAMES_H
#define APPSRV_TEST_WS_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WSC_FIN   0x80u
#define WSC_RSV1  0x40u
#define WSC_RSV2  0x20u
#define WSC_RSV3  0x10u
#define WSC_CONT  0x0u
#define WSC_TEXT  0x1u
#define WSC_BIN   0x2u
#define WSC_CLOSE 0x8u
#define WSC_PING  0x9u
#define WSC_PONG  0xAu

/* Writes a frame: b0 is the first header byte as sent (FIN, RSV, opcode),
 * the length in its shortest form, masked with key when key is not NULL.
 * out must hold len + 14 bytes. Returns the frame's length. */
size_t wsc_build(uint8_t *out, unsigned b0, const void *payload, size_t len, const uint8_t *key);

/* A growing byte string of frames (test rows, message streams). */
typedef struct wsc_buf {
    uint8_t *p;
    size_t len, cap;
} wsc_buf_t;

/* Appends a frame (masked with a key that changes per frame when mask).
 * Returns 0 or -ENOMEM. */
int wsc_buf_frame(wsc_buf_t *b, unsigned b0, const void *payload, size_t len, bool mask);
int wsc_buf_raw(wsc_buf_t *b, const void *data, size_t len);
void wsc_buf_free(wsc_buf_t *b);

#endif /* APPSRV_TEST_WS_FRAMES_H */
