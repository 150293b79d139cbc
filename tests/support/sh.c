/* SPDX-License-Identifier: MIT */
/*
 * sh.c - the tests' shell runner (contract in sh.h): fork, a new process
 * group, output into an unlinked temp file, proc.h's bounded wait, then
 * SIGKILL to the group. Used by tls_util.c and the upload suites.
 */
#include "sh.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc.h"

int e2e_sh(const char *cmd, int timeout_ms, char **out)
{
    char path[] = "/tmp/appsrv-sh-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -errno;
    unlink(path);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        return -errno;
    }
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    int st = e2e_wait_child(pid, timeout_ms);
    int rc;
    if (st == -1) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        rc = -ETIMEDOUT;
    } else {
        rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    kill(-pid, SIGKILL); /* stragglers of the group */
    if (out != NULL) {
        off_t n = lseek(fd, 0, SEEK_END);
        *out = malloc((size_t)(n > 0 ? n : 0) + 1);
        if (*out == NULL) {
            close(fd);
            return -ENOMEM;
        }
        ssize_t got = n > 0 ? pread(fd, *out, (size_t)n, 0) : 0;
        (*out)[got > 0 ? got : 0] = '\0';
    }
    close(fd);
    return rc;
}

bool e2e_have(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "command -v %s", name);
    return e2e_sh(cmd, 5000, NULL) == 0;
}
