/* SPDX-License-Identifier: MIT */
/*
 * fuzz_line.c - libFuzzer driver for the line protocol (STYLE §6): the
 * whole-connection driver of fuzz_conn.c with every input sent to a line
 * connection, so that the fuzzer spends its time on line.c (framing,
 * "\r\n", the 413 limit, pipelined and deferred replies, QUIT). Same input
 * format: byte 0 flags (the line bit is forced), bytes 1-2 the split,
 * then the payload; its seeds are in fuzz/corpus/line/.
 */
#define FUZZ_LINE_ONLY 1
#include "fuzz_conn.c"
