/* tp_cost: what hooking every syscall costs by itself, before any work of
 * ours. Times getppid() with nothing attached, with an empty BPF program on
 * raw_syscalls:sys_enter attached as a classic tracepoint (a perf event:
 * the kernel first copies the record into a perf buffer, as for slimd's
 * `syscall_seen` and its syscalls:sys_enter_* / sys_exit_* programs), and
 * the same program attached as a raw tracepoint (arguments passed as is).
 * The three alternate within each round. Prints one JSON object.
 *
 * Time is the thread's CPU time, so preemption by neighbours drops out.
 *
 *   tp_cost N ROUNDS      N calls per measurement */
#define _GNU_SOURCE
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long bpf(int cmd, union bpf_attr *a) { return syscall(__NR_bpf, cmd, a, sizeof *a); }

static int load(int type) {
    struct bpf_insn insns[2] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 0},
        {.code = BPF_JMP | BPF_EXIT},
    };
    char log[4096] = "";
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.prog_type = type;
    a.insns = (unsigned long)insns;
    a.insn_cnt = 2;
    a.license = (unsigned long)"GPL";
    a.log_buf = (unsigned long)log;
    a.log_size = sizeof log;
    a.log_level = 1;
    int fd = bpf(BPF_PROG_LOAD, &a);
    if (fd < 0) { perror("BPF_PROG_LOAD"); fprintf(stderr, "%s\n", log); exit(1); }
    return fd;
}

static double ns_per_call(long n) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    return ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / n;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    FILE *f = fopen("/sys/kernel/tracing/events/raw_syscalls/sys_enter/id", "r");
    int id;
    if (!f || fscanf(f, "%d", &id) != 1) { perror("tracepoint id"); return 1; }
    fclose(f);
    int classic_prog = load(BPF_PROG_TYPE_TRACEPOINT);
    int raw_prog = load(BPF_PROG_TYPE_RAW_TRACEPOINT);
    printf("{\"calls\":%ld,\"rounds\":[", n);
    for (int r = 0; r < rounds; r++) {
        double none = ns_per_call(n);
        struct perf_event_attr pa;
        memset(&pa, 0, sizeof pa);
        pa.type = PERF_TYPE_TRACEPOINT;
        pa.size = sizeof pa;
        pa.config = id;
        pa.sample_period = 1;
        pa.wakeup_events = 1;
        int pfd = syscall(__NR_perf_event_open, &pa, -1, 0, -1, 0);
        if (pfd < 0) { perror("perf_event_open"); return 1; }
        if (ioctl(pfd, PERF_EVENT_IOC_SET_BPF, classic_prog) < 0) { perror("SET_BPF"); return 1; }
        if (ioctl(pfd, PERF_EVENT_IOC_ENABLE, 0) < 0) { perror("ENABLE"); return 1; }
        double classic = ns_per_call(n);
        close(pfd);
        union bpf_attr a;
        memset(&a, 0, sizeof a);
        a.raw_tracepoint.name = (unsigned long)"sys_enter";
        a.raw_tracepoint.prog_fd = raw_prog;
        int rfd = bpf(BPF_RAW_TRACEPOINT_OPEN, &a);
        if (rfd < 0) { perror("BPF_RAW_TRACEPOINT_OPEN"); return 1; }
        double raw = ns_per_call(n);
        close(rfd);
        double none2 = ns_per_call(n);
        printf("%s{\"none_ns\":%.1f,\"classic_ns\":%.1f,\"raw_ns\":%.1f}", r ? "," : "",
               (none + none2) / 2, classic, raw);
    }
    printf("]}\n");
    return 0;
}
