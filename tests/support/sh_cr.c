/* SPDX-License-Identifier: MIT */
/*
 * sh_cr.c - the Criterion-facing shell runner (contract in sh.h), built
 * only into the Criterion runner: sh.c's e2e_sh(), failing the test with
 * the command and its output when it cannot run or does not finish.
 */
#include <criterion/criterion.h>

#include <stdlib.h>

#include "client.h"
#include "sh.h"

int sh_run(const char *cmd, int timeout_ms, char **out)
{
    char *o = NULL;
    int st = e2e_sh(cmd, timeout_ms, &o);
    cr_assert_geq(st, 0, "`%s` did not finish in %d ms (%s); output: %s", cmd, timeout_ms,
                  e2e_errname(st), o ? o : "");
    if (out != NULL)
        *out = o;
    else
        free(o);
    return st;
}
