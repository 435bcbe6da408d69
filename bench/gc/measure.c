/*
 * measure: run one program and report its wall time and rusage.
 *
 *   measure OUTFILE PROGRAM [ARGS...]
 *
 * Forks, execs PROGRAM (stdin/stdout/stderr inherited), waits for it with
 * wait4() and writes one line to OUTFILE:
 *
 *   <wall_s> <user_s> <sys_s> <maxrss_kib> <raw wait status>
 *
 * then exits with PROGRAM's exit code (128+signal if it was killed).
 *
 * Why not os.wait4() straight from Python: Linux keeps the peak RSS of a
 * process across execve() (exec_mmap() folds the old mm's high-water mark
 * into signal->maxrss), so a child forked from the Python interpreter
 * reports at least Python's own RSS (~14 MiB) as ru_maxrss, whatever it
 * execs. This launcher is tiny, so the grandchild's ru_maxrss starts from
 * ~1 MiB and is the benchmark's own peak for any realistic run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double tv(struct timeval t) { return (double)t.tv_sec + (double)t.tv_usec / 1e6; }

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s OUTFILE PROGRAM [ARGS...]\n", argv[0]);
        return 125;
    }
    double t0 = now();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 126;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("wait4");
            return 126;
        }
    }
    double wall = now() - t0;
    FILE *f = fopen(argv[1], "w");
    if (!f) {
        perror(argv[1]);
        return 126;
    }
    fprintf(f, "%.6f %.6f %.6f %ld %d\n", wall, tv(ru.ru_utime), tv(ru.ru_stime), ru.ru_maxrss, status);
    fclose(f);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}
