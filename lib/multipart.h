/* SPDX-License-Identifier: MIT */
/*
 * multipart.h - the multipart/form-data parser (multipart.c). Its whole
 * API is public (appsrv_multipart_* in appsrv.h); this header only names
 * the module for lib/DEPS.
 */
#ifndef APPSRV_MULTIPART_H
#define APPSRV_MULTIPART_H

#include "appsrv.h"

#endif /* APPSRV_MULTIPART_H */
