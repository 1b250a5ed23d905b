/* loop: the syscall-heavy workloads slimd's benchmarks time. Built static
 * (no loader, no libc opens of its own) so the only file activity is the
 * loop's. Each mode times itself with CLOCK_MONOTONIC, so container start-up
 * never enters a figure, and prints one JSON line on stdout.
 *
 *   loop files N DIR            N x (open+read+close DIR/fK, stat DIR/fK,
 *                               stat DIR/missingK), K = i % 64
 *   loop forkexec N PATH        N x (fork, exec PATH, wait)
 *   loop burst OP TOTAL DIR DIST RATE PROCS
 *                               TOTAL stats (OP stat) or open+close (OP
 *                               open) of DIR/dD/fF over DIST files (100
 *                               dirs), split over PROCS processes, paced to
 *                               RATE ops/s in all (0: flat out); the
 *                               event-capacity burst
 *   loop mkburst DIR DIST       create the DIST empty files burst opens
 *   loop mkfiles DIR            create DIR/f0..f63 (host runs)
 *   loop sleep                  print "ready" and sleep until killed
 *   loop true                   exit 0 at once (the exec target)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NFILES 64
#define NDIRS 100

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "loop: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* User + system CPU time of this process and its waited-for children: on
 * a shared machine this moves far less with the neighbours' load than wall
 * time, and it includes the kernel programs' run time (charged as system
 * time to the task whose syscall ran them). */
static long long cpu_ns(void) {
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    long long us = 0;
    us += self.ru_utime.tv_sec * 1000000LL + self.ru_utime.tv_usec;
    us += self.ru_stime.tv_sec * 1000000LL + self.ru_stime.tv_usec;
    us += kids.ru_utime.tv_sec * 1000000LL + kids.ru_utime.tv_usec;
    us += kids.ru_stime.tv_sec * 1000000LL + kids.ru_stime.tv_usec;
    return us * 1000;
}

static long long cpu_start;

static long long start_clock(void) {
    cpu_start = cpu_ns();
    return now_ns();
}

static void report(const char *mode, long n, long long start, long long end, long ops) {
    long long cpu = cpu_ns() - cpu_start;
    printf("{\"mode\":\"%s\",\"n\":%ld,\"ops\":%ld,\"start_ns\":%lld,\"end_ns\":%lld,"
           "\"ns\":%lld,\"cpu_ns\":%lld}\n",
           mode, n, ops, start, end, end - start, cpu);
    fflush(stdout);
}

static int files(long n, const char *dir) {
    char paths[NFILES][256], missing[NFILES][256], buf[512];
    for (int k = 0; k < NFILES; k++) {
        snprintf(paths[k], sizeof paths[k], "%s/f%d", dir, k);
        snprintf(missing[k], sizeof missing[k], "%s/missing%d", dir, k);
    }
    struct stat st;
    long long t0 = start_clock();
    for (long i = 0; i < n; i++) {
        int k = (int)(i % NFILES);
        int fd = open(paths[k], O_RDONLY);
        if (fd < 0) die(paths[k]);
        if (read(fd, buf, sizeof buf) < 0) die("read");
        close(fd);
        if (stat(paths[k], &st) < 0) die(paths[k]);
        if (stat(missing[k], &st) == 0) { fprintf(stderr, "loop: %s exists\n", missing[k]); return 2; }
    }
    report("files", n, t0, now_ns(), n * 5);
    return 0;
}

static int forkexec(long n, const char *path) {
    long long t0 = start_clock();
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            execl(path, path, "true", (char *)NULL);
            _exit(127);
        }
        int st;
        if (waitpid(pid, &st, 0) < 0) die("waitpid");
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) { fprintf(stderr, "loop: child failed\n"); return 2; }
    }
    report("forkexec", n, t0, now_ns(), n);
    return 0;
}

/* One burst worker: ops k, k+procs, ... of the burst over files
 * (k + procs*j) % dist, paced to rate/procs ops/s. */
static void burst_worker(int use_open, long total, const char *dir, long dist, long rate, int k,
                         int procs, long long t0) {
    char p[256];
    struct stat st;
    double step = rate > 0 ? 1e9 * procs / (double)rate : 0;
    long done = 0;
    for (long i = k; i < total; i += procs, done++) {
        long f = i % dist;
        snprintf(p, sizeof p, "%s/d%ld/f%ld", dir, f % NDIRS, f);
        if (use_open) {
            int fd = open(p, O_RDONLY);
            if (fd < 0) die(p);
            close(fd);
        } else if (stat(p, &st) < 0) {
            die(p);
        }
        /* Pace in steps of 256 ops: sleep while ahead of schedule. */
        if (step > 0 && (done & 255) == 255) {
            long long due = t0 + (long long)((double)(done + 1) * step);
            long long t = now_ns();
            if (due > t) {
                struct timespec ts = {(due - t) / 1000000000LL, (due - t) % 1000000000LL};
                nanosleep(&ts, NULL);
            }
        }
    }
}

static int burst(const char *op, long total, const char *dir, long dist, long rate, int procs) {
    int use_open = !strcmp(op, "open");
    if (!use_open && strcmp(op, "stat")) { fprintf(stderr, "loop: burst op is open or stat\n"); return 2; }
    if (procs < 1) procs = 1;
    long long t0 = start_clock();
    for (int k = 0; k < procs; k++) {
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            burst_worker(use_open, total, dir, dist, rate, k, procs, t0);
            _exit(0);
        }
    }
    int failed = 0;
    for (int k = 0; k < procs; k++) {
        int st;
        if (wait(&st) < 0) die("wait");
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) failed = 1;
    }
    if (failed) { fprintf(stderr, "loop: a burst worker failed\n"); return 2; }
    report("burst", total, t0, now_ns(), total);
    return 0;
}

static int mkburst(const char *dir, long dist) {
    char p[256];
    mkdir(dir, 0755);
    for (long d = 0; d < NDIRS; d++) {
        snprintf(p, sizeof p, "%s/d%ld", dir, d);
        if (mkdir(p, 0755) < 0 && errno != EEXIST) die(p);
    }
    for (long f = 0; f < dist; f++) {
        snprintf(p, sizeof p, "%s/d%ld/f%ld", dir, f % NDIRS, f);
        int fd = open(p, O_CREAT | O_WRONLY, 0644);
        if (fd < 0) die(p);
        close(fd);
    }
    return 0;
}

static int mkfiles(const char *dir) {
    char p[256];
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) die(dir);
    for (int k = 0; k < NFILES; k++) {
        snprintf(p, sizeof p, "%s/f%d", dir, k);
        int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
        if (fd < 0) die(p);
        char line[64];
        int len = snprintf(line, sizeof line, "file %d\n", k);
        if (write(fd, line, (size_t)len) != len) die("write");
        close(fd);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: loop MODE ...\n"); return 2; }
    const char *m = argv[1];
    if (!strcmp(m, "true")) return 0;
    if (!strcmp(m, "files") && argc == 4) return files(atol(argv[2]), argv[3]);
    if (!strcmp(m, "forkexec") && argc == 4) return forkexec(atol(argv[2]), argv[3]);
    if (!strcmp(m, "burst") && argc == 8)
        return burst(argv[2], atol(argv[3]), argv[4], atol(argv[5]), atol(argv[6]), atoi(argv[7]));
    if (!strcmp(m, "mkburst") && argc == 4) return mkburst(argv[2], atol(argv[3]));
    if (!strcmp(m, "mkfiles") && argc == 3) return mkfiles(argv[2]);
    if (!strcmp(m, "sleep")) {
        printf("ready\n");
        fflush(stdout);
        for (;;) pause();
    }
    fprintf(stderr, "loop: bad arguments for %s\n", m);
    return 2;
}
