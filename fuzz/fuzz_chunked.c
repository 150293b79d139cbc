/* SPDX-License-Identifier: MIT */
/*
 * fuzz_chunked.c - libFuzzer driver for appsrv__chunked_parse(). The input
 * is a chunked body (plus whatever follows it); it is decoded whole, split
 * in two at a point taken from its first byte, and one byte at a time,
 * with a roomy and a tiny trailer limit; see fuzz_check.h for what must
 * agree.
 */
#include "http_parse.h"

#include <stdint.h>

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t split = size ? (size_t)data[0] * (size + 1) / 256 : 0;

    fuzz_check_chunked(data, size, split, 4096);
    fuzz_check_chunked(data, size, split, 16);
    return 0;
}
