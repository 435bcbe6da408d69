/*
 * launch: run one benchmark program, report its wall time and wait4 rusage.
 *
 * Not a workload. run.py could fork the programs itself, but a process's peak
 * RSS (ru_maxrss) starts at its parent's RSS at the time of the fork: exec
 * carries over the high-water mark of the memory image it replaces. Python's
 * 16 MiB would then hide every small workload's footprint. This launcher is a
 * small C process (about 1 MiB, like GNU time, through which mimalloc-bench
 * runs everything), so the measured program starts from next to nothing.
 *
 *     launch RESULT_FILE TIMEOUT_S PRELOAD PROG [ARGS...]
 *
 * PRELOAD is the LD_PRELOAD value for PROG, or "-" for none; the launcher
 * itself never runs under it. PROG is killed after TIMEOUT_S seconds. The
 * launcher writes one line to RESULT_FILE:
 *
 *     wall_s wait_status maxrss_kib utime_s stime_s minflt majflt timed_out
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile pid_t child;
static volatile sig_atomic_t timed_out;

static void on_alarm(int sig)
{
    (void)sig;
    timed_out = 1;
    kill(child, SIGKILL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: launch RESULT_FILE TIMEOUT_S PRELOAD PROG [ARGS...]\n");
        return 2;
    }
    const char *preload = argv[3];
    double timeout = atof(argv[2]);

    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0) {
        perror("launch: fork");
        return 2;
    }
    if (pid == 0) {
        if (strcmp(preload, "-") != 0)
            setenv("LD_PRELOAD", preload, 1);
        else
            unsetenv("LD_PRELOAD");
        execv(argv[4], argv + 4);
        perror("launch: exec");
        _exit(127);
    }
    child = pid;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = { { 0, 0 }, { (time_t)timeout, (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6) } };
    setitimer(ITIMER_REAL, &it, NULL);

    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("launch: wait4");
            return 2;
        }
    }
    double wall = now_s() - t0;

    FILE *f = fopen(argv[1], "w");
    if (f == NULL) {
        perror("launch: result file");
        return 2;
    }
    fprintf(f, "%.6f %d %ld %.6f %.6f %ld %ld %d\n", wall, status, ru.ru_maxrss, tv_s(ru.ru_utime),
            tv_s(ru.ru_stime), ru.ru_minflt, ru.ru_majflt, (int)timed_out);
    return fclose(f) == 0 ? 0 : 2;
}
