/*
 * bench_daemon — hubcapd end to end: the real daemon, started fresh with a
 * temporary data directory on ports the kernel picks, fed by hubcap-loadgen
 * over loopback on the same machine.  Four figures: TCP reports per second
 * checked and committed; UDP datagrams per second accepted, against a plain
 * recvmmsg sink fed the same stream; resident memory per stored vehicle;
 * and the restart time with the vehicles of the memory run stored.
 *
 * Single-threaded, apart from the sink's receive thread.  Every daemon and
 * load generator is a child process that dies with this program
 * (PR_SET_PDEATHSIG); every daemon started is stopped and every temporary
 * directory removed, on failure too.  Output: "BENCH <name> <value> <unit>"
 * lines, "# " lines for the command lines, the input and each run, and one
 * "floor ...: met | NOT met" line per floor.  A missed floor is reported,
 * not failed; an error in any run makes the exit status 1.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"
#include "hubcap/cli.h"
#include "hubcap/ctl.h"
#include "hubcap/front.h"
#include "hubcap/timefmt.h"

#define MAX_RUNS 16
#define SINK_VLEN 64
#define SINK_DGRAM 65536
/* What hubcapd's front asks for its UDP socket (src/front.c), so that the
 * sink and the daemon queue the same amount in the kernel. */
#define SINK_RCVBUF HC_FRONT_UDP_RCVBUF

/* Set by SIGINT/SIGTERM/SIGHUP.  The one file-scope variable: a signal
 * handler has no context argument.  Waits notice it, the run in progress
 * fails, and the usual clean-up stops the daemons and removes the dirs. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct bench {
    char hubcapd[PATH_MAX], loadgen[PATH_MAX];
    char work[64];          /* /tmp/hubcap-bench-XXXXXX: every data dir lives here */
    unsigned seq;           /* data dirs made so far */
    int quick;
    const char *only;       /* NULL: every benchmark */
};

struct daemon {
    pid_t pid;              /* 0 when not running */
    char dir[128];          /* data dir, under bench.work */
    char log[136];          /* its stderr: dir + ".log" */
    char control[108];
    char cmd[1024];         /* the command line, for "# command:" */
    unsigned tcp, udp;
    double start_s;         /* from fork/exec to hubcapd.json */
};

/* An argument vector with room for the few numbers it formats itself. */
struct args {
    const char *v[48];
    char num[8][24];
    int n, n_num;
};

static void arg(struct args *a, const char *s)
{
    if (a->n < 47)
        a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

static void arg_uint(struct args *a, unsigned long long x)
{
    if (a->n_num == 8)
        abort();
    snprintf(a->num[a->n_num], sizeof(a->num[0]), "%llu", x);
    arg(a, a->num[a->n_num++]);
}

static void arg_list(struct args *a, const char *const *list)
{
    for (int i = 0; list && list[i]; i++)
        arg(a, list[i]);
}

/* argv joined by spaces, for the "# command:" lines. */
static void join(char *out, size_t cap, const char *const *argv)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; argv[i] && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? " " : "", argv[i]);
}

static void sleep_ms(int ms)
{
    nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L },
              NULL);
}

static double since_s(uint64_t t0)
{
    return (double)(hc_time_mono_ns() - t0) / 1e9;
}

static void verdict(const char *floor_txt, int met, const char *what)
{
    printf("floor %s: %s (%s)\n", floor_txt, met ? "met" : "NOT met", what);
}

/* ---- files and processes -------------------------------------------------- */

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (type == FTW_DP ? rmdir(path) : unlink(path)) < 0 ? -1 : 0;
}

/* Removes the tree at path; 0, or -1 with errno set.  A missing path is fine. */
static int rm_tree(const char *path)
{
    if (access(path, F_OK) < 0)
        return errno == ENOENT ? 0 : -1;
    return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Bytes allocated on disk under path (the LMDB files, alarms.log). */
static uint64_t disk_usage(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return 0;
    uint64_t total = (uint64_t)st.st_blocks * 512;
    DIR *dir = S_ISDIR(st.st_mode) ? opendir(path) : NULL;
    for (struct dirent *e; dir && (e = readdir(dir));) {
        char sub[PATH_MAX];
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) < (int)sizeof(sub))
            total += disk_usage(sub);
    }
    if (dir)
        closedir(dir);
    return total;
}

/* fork + exec argv with stdout/stderr on out_fd/err_fd (-1: inherit).  The
 * child gets death_sig when this program dies, so nothing outlives a
 * crashed or timed-out benchmark.  Returns the pid, or -1 with errno. */
static pid_t spawn(const char *const *argv, int out_fd, int err_fd, int death_sig)
{
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    if (prctl(PR_SET_PDEATHSIG, death_sig) < 0 || getppid() != parent)
        _exit(127);
    if ((out_fd >= 0 && dup2(out_fd, STDOUT_FILENO) < 0) ||
        (err_fd >= 0 && dup2(err_fd, STDERR_FILENO) < 0))
        _exit(127);
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

static void describe_status(char *out, size_t cap, int status)
{
    if (WIFEXITED(status))
        snprintf(out, cap, "exit status %d%s", WEXITSTATUS(status),
                 WEXITSTATUS(status) == 127 ? " (could not be run)" : "");
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(out, cap, "status %d", status);
}

struct rss {
    uint64_t vm, anon, file;    /* bytes: VmRSS, RssAnon, RssFile */
};

/* Reads the resident set of pid from /proc/PID/status; 0 or -1. */
static int proc_rss(pid_t pid, struct rss *r)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int found = 0;
    unsigned long long kb;
    memset(r, 0, sizeof(*r));
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
            r->vm = kb * 1024, found |= 1;
        else if (sscanf(line, "RssAnon: %llu kB", &kb) == 1)
            r->anon = kb * 1024, found |= 2;
        else if (sscanf(line, "RssFile: %llu kB", &kb) == 1)
            r->file = kb * 1024, found |= 4;
    }
    fclose(f);
    return found == 7 ? 0 : -1;
}

/* The kernel's count of UDP datagrams dropped because a socket's receive
 * buffer was full (machine-wide); -1 if unreadable. */
static long long udp_rcvbuf_errors(void)
{
    char head[1024], vals[1024];
    FILE *f = fopen("/proc/net/snmp", "r");
    if (!f)
        return -1;
    long long found = -1;
    while (found < 0 && fgets(head, sizeof(head), f)) {
        if (strncmp(head, "Udp: ", 5) != 0 || !fgets(vals, sizeof(vals), f))
            continue;
        char *hs, *vs;
        char *h = strtok_r(head, " \n", &hs), *v = strtok_r(vals, " \n", &vs);
        while (h && v) {
            if (strcmp(h, "RcvbufErrors") == 0)
                found = atoll(v);
            h = strtok_r(NULL, " \n", &hs);
            v = strtok_r(NULL, " \n", &vs);
        }
    }
    fclose(f);
    return found;
}

/* ---- the daemon ------------------------------------------------------------ */

static void daemon_dump_log(const struct daemon *d)
{
    FILE *f = fopen(d->log, "r");
    if (!f)
        return;
    char buf[4096];
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "bench_daemon: end of hubcapd's log (%s):\n%s", d->log, buf);
}

/* SIGTERM, then wait up to 300 s (SIGKILL after that).  Returns 0 when it
 * exited 0; the time from the signal to the exit goes to *stop_s. */
static int daemon_stop(struct daemon *d, double *stop_s)
{
    if (d->pid <= 0)
        return 0;
    uint64_t t0 = hc_time_mono_ns();
    int status = 0, rc = -1;
    char why[96] = "did not exit within 300 s; killed";
    kill(d->pid, SIGTERM);
    for (;;) {
        pid_t w = waitpid(d->pid, &status, WNOHANG);
        if (w == d->pid) {
            rc = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
            describe_status(why, sizeof(why), status);
            break;
        }
        if (w < 0 && errno != EINTR) {
            snprintf(why, sizeof(why), "waitpid: %s", strerror(errno));
            break;
        }
        if (since_s(t0) > 300) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &status, 0);
            break;
        }
        sleep_ms(1);
    }
    if (stop_s)
        *stop_s = since_s(t0);
    if (rc < 0) {
        fprintf(stderr, "bench_daemon: hubcapd (pid %d) on SIGTERM: %s\n", (int)d->pid, why);
        daemon_dump_log(d);
    }
    d->pid = 0;
    return rc;
}

/* Stops the daemon if it runs and removes its data dir and log. */
static void daemon_discard(struct daemon *d)
{
    daemon_stop(d, NULL);
    if (d->dir[0] && rm_tree(d->dir) < 0)
        fprintf(stderr, "bench_daemon: cannot remove %s: %s\n", d->dir, strerror(errno));
    if (d->log[0])
        unlink(d->log);
    memset(d, 0, sizeof(*d));
}

/* Starts hubcapd on d->dir (a fresh one under b->work when empty) with
 * msgpack.port=0 and the NULL-terminated extra settings, and waits for
 * hubcapd.json.  d->start_s is the time from fork/exec to that file
 * appearing (it is written by rename, so it appears complete).  Returns 0,
 * or -1 with the reason printed and the daemon stopped. */
static int daemon_start(struct bench *b, struct daemon *d, const char *const *sets)
{
    if (!d->dir[0]) {
        snprintf(d->dir, sizeof(d->dir), "%s/d%u", b->work, ++b->seq);
        snprintf(d->log, sizeof(d->log), "%s.log", d->dir);
        if (mkdir(d->dir, 0700) < 0) {
            fprintf(stderr, "bench_daemon: mkdir %s: %s\n", d->dir, strerror(errno));
            return -1;
        }
    }
    char ready[PATH_MAX];
    snprintf(ready, sizeof(ready), "%s/hubcapd.json", d->dir);
    unlink(ready);
    struct args a = { .n = 0 };
    arg(&a, b->hubcapd);
    arg(&a, "--data-dir");
    arg(&a, d->dir);
    arg(&a, "--set");
    arg(&a, "msgpack.port=0");
    arg(&a, "--set");
    arg(&a, "jt808.port=0");
    arg(&a, "--set");
    arg(&a, "teltonika.port=0");
    for (int i = 0; sets && sets[i]; i++) {
        arg(&a, "--set");
        arg(&a, sets[i]);
    }
    join(d->cmd, sizeof(d->cmd), a.v);
    int log = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log < 0) {
        fprintf(stderr, "bench_daemon: %s: %s\n", d->log, strerror(errno));
        return -1;
    }
    uint64_t t0 = hc_time_mono_ns();
    d->pid = spawn(a.v, -1, log, SIGTERM);
    int e = errno;
    close(log);
    if (d->pid < 0) {
        fprintf(stderr, "bench_daemon: fork: %s\n", strerror(e));
        d->pid = 0;
        return -1;
    }
    struct stat st;
    while (stat(ready, &st) < 0) {
        int status;
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            char why[96];
            describe_status(why, sizeof(why), status);
            fprintf(stderr, "bench_daemon: hubcapd exited during start-up: %s\n  %s\n", why,
                    d->cmd);
            d->pid = 0;
            daemon_dump_log(d);
            return -1;
        }
        if (since_s(t0) > 300 || interrupted) {
            fprintf(stderr, "bench_daemon: hubcapd not ready after %.0f s%s\n", since_s(t0),
                    interrupted ? " (interrupted)" : "");
            daemon_stop(d, NULL);
            return -1;
        }
        sleep_ms(1);
    }
    d->start_s = since_s(t0);
    json_error_t err;
    json_t *j = json_load_file(ready, 0, &err);
    const char *ctl = j ? json_string_value(json_object_get(j, "control")) : NULL;
    if (!ctl || strlen(ctl) >= sizeof(d->control)) {
        fprintf(stderr, "bench_daemon: %s: no usable control socket (%s)\n", ready,
                j ? "missing or too long" : err.text);
        json_decref(j);
        daemon_stop(d, NULL);
        return -1;
    }
    snprintf(d->control, sizeof(d->control), "%s", ctl);
    d->tcp = (unsigned)json_integer_value(json_object_get(j, "msgpack_tcp"));
    d->udp = (unsigned)json_integer_value(json_object_get(j, "msgpack_udp"));
    json_decref(j);
    return 0;
}

/* {"cmd":"stats"} over the control socket: the whole answer (caller
 * decrefs), or NULL when the daemon did not answer ok. */
static json_t *daemon_stats(const struct daemon *d)
{
    json_t *a = hc_ctl_call(d->control, "{\"cmd\":\"stats\"}\n", 10000);
    if (a && !json_is_true(json_object_get(a, "ok"))) {
        json_decref(a);
        a = NULL;
    }
    if (!a)
        fprintf(stderr, "bench_daemon: no stats from %s\n", d->control);
    return a;
}

/* A counter of a stats answer by dotted path under "stats", e.g.
 * "front.udp_datagrams"; 0 if absent. */
static uint64_t stat_u64(json_t *answer, const char *path)
{
    return (uint64_t)json_integer_value(hc_json_path(json_object_get(answer, "stats"), path));
}

/* ---- the load generator ----------------------------------------------------- */

/* Runs hubcap-loadgen with args and parses the JSON line it prints.  While
 * it runs, if watch is set, prints that daemon's progress to stderr every
 * 10 s.  Returns 0 with *out set (caller decrefs) when it exited 0 and
 * printed JSON; -1 otherwise, with the reason printed.  cmd receives the
 * command line. */
static int run_loadgen(const struct bench *b, const char *const *args,
                       const struct daemon *watch, json_t **out, char *cmd, size_t cmd_cap)
{
    struct args a = { .n = 0 };
    arg(&a, b->loadgen);
    arg_list(&a, args);
    join(cmd, cmd_cap, a.v);
    *out = NULL;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        fprintf(stderr, "bench_daemon: pipe: %s\n", strerror(errno));
        return -1;
    }
    pid_t pid = spawn(a.v, p[1], -1, SIGKILL);
    close(p[1]);
    if (pid < 0) {
        fprintf(stderr, "bench_daemon: fork: %s\n", strerror(errno));
        close(p[0]);
        return -1;
    }
    char text[8192];
    size_t len = 0;
    uint64_t t0 = hc_time_mono_ns(), shown = t0;
    int killed = 0;
    for (;;) {
        struct pollfd pf = { .fd = p[0], .events = POLLIN };
        int n = poll(&pf, 1, 1000);
        if (n > 0) {
            char chunk[4096];
            ssize_t got = read(p[0], chunk, sizeof(chunk));
            if (got == 0 || (got < 0 && errno != EINTR))
                break;
            /* Keep the tail: the summary is the last line. */
            size_t g = got > 0 ? (size_t)got : 0;
            if (len + g >= sizeof(text)) {
                size_t drop = len + g - (sizeof(text) - 1);
                drop = drop > len ? len : drop;
                memmove(text, text + drop, len - drop);
                len -= drop;
            }
            if (g >= sizeof(text))
                g = sizeof(text) - 1;
            memcpy(text + len, chunk, g);
            len += g;
        }
        if (watch && since_s(shown) >= 10) {
            shown = hc_time_mono_ns();
            json_t *s = daemon_stats(watch);
            if (s) {
                uint64_t r = stat_u64(s, "reports");
                fprintf(stderr, "  ... %.0f s: hubcapd has taken %llu reports%s\n", since_s(t0),
                        (unsigned long long)r,
                        r ? "" : " (hubcap-loadgen is still generating its stream)");
                json_decref(s);
            }
        }
        if (since_s(t0) > 1700 || interrupted) {
            fprintf(stderr, "bench_daemon: hubcap-loadgen %s; killed\n",
                    interrupted ? "interrupted" : "still running after 1700 s");
            kill(pid, SIGKILL);
            killed = 1;
            break;
        }
    }
    close(p[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    text[len] = '\0';
    if (killed)
        return -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char why[96];
        describe_status(why, sizeof(why), status);
        fprintf(stderr, "bench_daemon: hubcap-loadgen failed: %s\n  %s\n", why, cmd);
        return -1;
    }
    /* The last line that starts with '{'. */
    char *line = NULL;
    for (char *s = text; s && *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL)
        if (*s == '{')
            line = s;
    *out = line ? json_loads(line, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
    if (!*out) {
        fprintf(stderr, "bench_daemon: hubcap-loadgen printed no JSON summary:\n%s\n", text);
        return -1;
    }
    return 0;
}

static double num(json_t *j, const char *key)
{
    return json_number_value(json_object_get(j, key));
}

/* Worker threads of the daemon that gave this stats answer. */
static size_t n_workers(json_t *answer)
{
    return json_array_size(json_object_get(json_object_get(answer, "stats"), "workers"));
}

/* ---- 1. TCP throughput ------------------------------------------------------ */

static int bench_tcp(struct bench *b)
{
    int runs = b->quick ? 3 : 5, ok = 0, rc = 0;
    unsigned vehicles = b->quick ? 1000 : 10000;
    double rate[MAX_RUNS];
    char cmd[1024];

    for (int i = 0; i < runs && !interrupted; i++) {
        struct daemon d;
        memset(&d, 0, sizeof(d));
        json_t *j = NULL;
        struct args la = { .n = 0 };
        if (daemon_start(b, &d, NULL) < 0) {
            rc = 1;
            continue;
        }
        arg(&la, "--data-dir");
        arg(&la, d.dir);
        arg(&la, "--vehicles");
        arg_uint(&la, vehicles);
        arg(&la, "--json");
        arg(&la, "-q");
        int r = run_loadgen(b, la.v, NULL, &j, cmd, sizeof(cmd));
        json_t *s = r == 0 ? daemon_stats(&d) : NULL;
        if (i == 0) {
            printf("# tcp: %d runs; each a fresh hubcapd with default settings (%zu worker%s)"
                   " and one hubcap-loadgen run of %u vehicles x 3 parking sessions x 48 fixes"
                   " (plus each session's ignition-on report) over TCP, 4 connections, 256"
                   " reports a frame, as fast as possible; the figure is reports checked and"
                   " committed by hubcapd / seconds from the first send to the last commit\n",
                   runs, n_workers(s), n_workers(s) == 1 ? "" : "s", vehicles);
            printf("# command: %s\n# command: %s\n# (a fresh data dir for every run)\n", d.cmd,
                   cmd);
        }
        if (r == 0) {
            uint64_t reports = (uint64_t)num(j, "reports");
            uint64_t processed = (uint64_t)num(j, "daemon_processed");
            if (processed != reports || !s || stat_u64(s, "reports") != reports) {
                fprintf(stderr, "bench_daemon: tcp run %d: %llu reports sent, hubcapd processed"
                        " %llu\n", i + 1, (unsigned long long)reports,
                        (unsigned long long)processed);
                rc = 1;
            } else {
                rate[ok++] = num(j, "daemon_per_second");
                printf("# tcp run %d: %llu reports; loadgen sent them in %.3f s (%.0f/s);"
                       " hubcapd done after %.3f s: %.0f reports/s\n", i + 1,
                       (unsigned long long)reports, num(j, "send_seconds"),
                       num(j, "sent_per_second"), num(j, "daemon_seconds"), rate[ok - 1]);
            }
        } else {
            rc = 1;
        }
        json_decref(s);
        json_decref(j);
        if (daemon_stop(&d, NULL) < 0)
            rc = 1;
        daemon_discard(&d);
        fflush(stdout);
    }
    if (ok) {
        double med = bench_median(rate, ok);
        printf("BENCH daemon_tcp_reports_per_s %.0f reports/s\n", med);
        printf("BENCH daemon_tcp_reports_per_s_min %.0f reports/s\n", rate[0]);
        printf("BENCH daemon_tcp_reports_per_s_max %.0f reports/s\n", rate[ok - 1]);
        char what[128];
        snprintf(what, sizeof(what), "median of %d run%s, daemon_tcp_reports_per_s >= 1000000",
                 ok, ok == 1 ? "" : "s");
        verdict("1000000", med >= 1e6, what);
    }
    return rc;
}

/* ---- 2. UDP: hubcapd against a plain sink ----------------------------------- */

struct sink {
    int fd;
    unsigned port;
    int rcvbuf;                 /* effective SO_RCVBUF */
    atomic_int stop;            /* set once the sender is done */
    uint64_t datagrams, bytes;  /* written by the thread; read after the join */
    int error;
    pthread_t thread;
    unsigned char *buf;         /* SINK_VLEN x SINK_DGRAM */
};

/* The receive thread: recvmmsg until told to stop and the socket has then
 * stayed empty for one receive timeout (100 ms), so the queue is drained. */
static void *sink_run(void *arg_)
{
    struct sink *s = arg_;
    struct mmsghdr m[SINK_VLEN];
    struct iovec iov[SINK_VLEN];
    memset(m, 0, sizeof(m));
    for (int i = 0; i < SINK_VLEN; i++) {
        iov[i].iov_base = s->buf + (size_t)i * SINK_DGRAM;
        iov[i].iov_len = SINK_DGRAM;
        m[i].msg_hdr.msg_iov = &iov[i];
        m[i].msg_hdr.msg_iovlen = 1;
    }
    for (;;) {
        int n = recvmmsg(s->fd, m, SINK_VLEN, MSG_WAITFORONE, NULL);
        if (n > 0) {
            s->datagrams += (uint64_t)n;
            for (int i = 0; i < n; i++)
                s->bytes += m[i].msg_len;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (atomic_load(&s->stop))
                break;
        } else if (n < 0 && errno != EINTR) {
            s->error = errno;
            break;
        }
    }
    return NULL;
}

/* Binds 127.0.0.1 on a port the kernel picks and starts the thread. */
static int sink_open(struct sink *s)
{
    memset(s, 0, sizeof(*s));
    s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    s->buf = malloc((size_t)SINK_VLEN * SINK_DGRAM);
    if (s->fd < 0 || !s->buf)
        goto fail;
    int rcvbuf = SINK_RCVBUF;
    socklen_t sl = sizeof(rcvbuf);
    struct timeval tv = { .tv_usec = 100000 };
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (setsockopt(s->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
        setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    getsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &s->rcvbuf, &sl);
    if (bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        goto fail;
    sl = sizeof(sa);
    getsockname(s->fd, (struct sockaddr *)&sa, &sl);
    s->port = ntohs(sa.sin_port);
    atomic_init(&s->stop, 0);
    errno = pthread_create(&s->thread, NULL, sink_run, s);
    if (errno == 0)
        return 0;
fail:
    fprintf(stderr, "bench_daemon: udp sink: %s\n", strerror(errno));
    if (s->fd >= 0)
        close(s->fd);
    free(s->buf);
    return -1;
}

/* Stops the thread (after draining) and closes; 0 unless receiving failed. */
static int sink_close(struct sink *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    close(s->fd);
    free(s->buf);
    if (s->error)
        fprintf(stderr, "bench_daemon: udp sink: recvmmsg: %s\n", strerror(s->error));
    return s->error ? -1 : 0;
}

/* The loadgen arguments both sides of the UDP comparison share. */
static void udp_stream(struct args *a, unsigned vehicles, double rate)
{
    if (rate > 0) {
        arg(a, "--rate");
        arg_uint(a, (unsigned)rate);
    }
    arg(a, "--udp");
    arg(a, "--vehicles");
    arg_uint(a, vehicles);
    arg(a, "--batch");
    arg(a, "1");
    arg(a, "--connections");
    arg(a, "2");
    arg(a, "--json");
    arg(a, "-q");
}

/* One hubcapd round: datagrams accepted per second of sending, or < 0. */
static double udp_daemon_round(struct bench *b, int round, unsigned vehicles, double offered,
                               double *accepted_fraction)
{
    struct daemon d;
    memset(&d, 0, sizeof(d));
    double rate = -1;
    char cmd[1024];
    json_t *j = NULL, *s = NULL;
    struct args la = { .n = 0 };
    if (daemon_start(b, &d, NULL) < 0)
        return -1;
    arg(&la, "--data-dir");
    arg(&la, d.dir);
    udp_stream(&la, vehicles, offered);
    long long k0 = udp_rcvbuf_errors();
    if (run_loadgen(b, la.v, NULL, &j, cmd, sizeof(cmd)) == 0 && (s = daemon_stats(&d))) {
        long long k1 = udp_rcvbuf_errors();
        uint64_t dgrams = stat_u64(s, "front.udp_datagrams");
        uint64_t dropped = stat_u64(s, "front.udp_dropped");
        double send_s = num(j, "send_seconds");
        rate = (double)(dgrams - dropped) / send_s;
        if (accepted_fraction)
            *accepted_fraction = (double)(dgrams - dropped) / num(j, "reports");
        if (round == 0)
            printf("# command: %s\n# command: %s\n", d.cmd, cmd);
        printf("# udp round %d, hubcapd: %.0f reports sent in %.3f s; hubcapd received %llu"
               " datagrams, dropped %llu (rings full), accepted %llu: %.0f datagrams/s"
               " (%llu reports checked); kernel RcvbufErrors +%lld\n", round + 1,
               num(j, "reports"), send_s, (unsigned long long)dgrams,
               (unsigned long long)dropped, (unsigned long long)(dgrams - dropped), rate,
               (unsigned long long)stat_u64(s, "reports"), k0 >= 0 && k1 >= 0 ? k1 - k0 : -1);
    }
    json_decref(s);
    json_decref(j);
    if (daemon_stop(&d, NULL) < 0)
        rate = -1;
    daemon_discard(&d);
    return rate;
}

/* One sink round: datagrams received per second of sending, or < 0. */
static double udp_sink_round(struct bench *b, int round, unsigned vehicles, double offered,
                             double *accepted_fraction)
{
    struct sink s;
    char port[16], cmd[1024];
    json_t *j = NULL;
    struct args la = { .n = 0 };
    if (sink_open(&s) < 0)
        return -1;
    snprintf(port, sizeof(port), "%u", s.port);
    arg(&la, "--host");
    arg(&la, "127.0.0.1");
    arg(&la, "--port");
    arg(&la, port);
    udp_stream(&la, vehicles, offered);
    long long k0 = udp_rcvbuf_errors();
    int r = run_loadgen(b, la.v, NULL, &j, cmd, sizeof(cmd));
    int rs = sink_close(&s);
    long long k1 = udp_rcvbuf_errors();
    double rate = -1;
    if (r == 0 && rs == 0) {
        double send_s = num(j, "send_seconds");
        rate = (double)s.datagrams / send_s;
        if (accepted_fraction)
            *accepted_fraction = (double)s.datagrams / num(j, "reports");
        if (round == 0)
            printf("# command: %s  (the sink: a socket in this program on 127.0.0.1:%u, a"
                   " port picked at run time, SO_RCVBUF %d as granted for hubcapd's %d"
                   " request, one thread in a recvmmsg loop counting datagrams)\n",
                   cmd, s.port, s.rcvbuf, SINK_RCVBUF);
        printf("# udp round %d, sink: %.0f reports sent in %.3f s; sink received %llu"
               " datagrams (%llu bytes): %.0f datagrams/s; kernel RcvbufErrors +%lld\n",
               round + 1, num(j, "reports"), send_s, (unsigned long long)s.datagrams,
               (unsigned long long)s.bytes, rate, k0 >= 0 && k1 >= 0 ? k1 - k0 : -1);
    }
    json_decref(j);
    return rate;
}

static int bench_udp(struct bench *b)
{
    int rounds = b->quick ? 1 : 3, na = 0, nb = 0, rc = 0;
    unsigned vehicles = b->quick ? 1000 : 10000;
    double ra[MAX_RUNS], rb[MAX_RUNS];
    printf("# udp: %d round%s, alternating (a) a fresh hubcapd with default settings and (b) a"
           " plain sink, each fed the same hubcap-loadgen stream: %u vehicles x 3 sessions x 48"
           " fixes, one report a datagram (as a tracker sends them), 2 sockets sending with sendmmsg,"
           " as fast as possible.  (a) = (udp_datagrams"
           " - udp_dropped from hubcapd's stats) / loadgen's send_seconds; (b) = datagrams the"
           " sink received / send_seconds.  hubcapd binds UDP on the port it picked for TCP;"
           " the sink is another socket and so has its own port.\n",
           rounds, rounds == 1 ? "" : "s", vehicles);
    for (int i = 0; i < rounds && !interrupted; i++) {
        double x = udp_daemon_round(b, i, vehicles, 0, NULL);
        if (x > 0)
            ra[na++] = x;
        else
            rc = 1;
        double y = udp_sink_round(b, i, vehicles, 0, NULL);
        if (y > 0)
            rb[nb++] = y;
        else
            rc = 1;
        fflush(stdout);
    }
    if (na && nb) {
        double ma = bench_median(ra, na), mb = bench_median(rb, nb);
        printf("BENCH daemon_udp_datagrams_per_s %.0f datagrams/s\n", ma);
        printf("BENCH sink_udp_datagrams_per_s %.0f datagrams/s\n", mb);
        printf("BENCH daemon_udp_vs_sink_ratio %.3f x\n", ma / mb);
        verdict("0.90", ma / mb >= 0.90,
                "median hubcapd / median sink, daemon_udp_vs_sink_ratio >= 0.90");
        /* The same comparison at an offered load both can sustain: what
         * share of the datagrams sent each one takes in. */
        double offered = 0.6 * mb, fa = 0, fb = 0;
        printf("# udp paced: the same stream offered at %.0f datagrams/s (60 %% of the sink's"
               " median), one round each\n", offered);
        if (udp_daemon_round(b, 1, vehicles, offered, &fa) < 0 ||
            udp_sink_round(b, 1, vehicles, offered, &fb) < 0)
            rc = 1;
        printf("BENCH daemon_udp_paced_accepted %.4f of datagrams sent\n", fa);
        printf("BENCH sink_udp_paced_accepted %.4f of datagrams sent\n", fb);
    }
    return rc;
}

/* ---- 3. memory, 4. restart ----------------------------------------------------- */

static void print_rss(const char *label, const struct rss *r)
{
    printf("# %s: VmRSS %.1f MiB = RssAnon %.1f MiB + RssFile %.1f MiB (+ RssShmem)\n", label,
           (double)r->vm / 1048576, (double)r->anon / 1048576, (double)r->file / 1048576);
}

/* Starts d (defaults), reads its RSS empty, loads `vehicles` vehicles with
 * full windows, reads it again.  Leaves d running for the restart benchmark.
 * Prints its figures only when print is set. */
static int bench_memory(struct bench *b, struct daemon *d, unsigned vehicles, int print)
{
    struct rss r0, r1;
    char cmd[1024];
    json_t *j = NULL, *s = NULL;
    struct args la = { .n = 0 };
    int rc = -1;
    if (daemon_start(b, d, NULL) < 0)
        return -1;
    sleep_ms(500);
    if (proc_rss(d->pid, &r0) < 0) {
        fprintf(stderr, "bench_daemon: cannot read /proc/%d/status\n", (int)d->pid);
        return -1;
    }
    arg(&la, "--data-dir");
    arg(&la, d->dir);
    arg(&la, "--vehicles");
    arg_uint(&la, vehicles);
    arg(&la, "--sessions");
    arg(&la, "1");
    arg(&la, "--reports");
    arg(&la, "16");
    arg(&la, "--tow-rate");
    arg(&la, "0");
    arg(&la, "--json");
    arg(&la, "-q");
    arg(&la, "--wait");
    arg(&la, "600");
    fprintf(stderr, "bench_daemon: loading %u vehicles into hubcapd (hubcap-loadgen first"
            " generates ~%u reports in its own memory; this can take a minute or more)\n",
            vehicles, vehicles * 17);
    uint64_t t0 = hc_time_mono_ns();
    if (run_loadgen(b, la.v, d, &j, cmd, sizeof(cmd)) < 0 || !(s = daemon_stats(d)))
        goto out;
    fprintf(stderr, "bench_daemon: loaded in %.0f s\n", since_s(t0));
    uint64_t stored = stat_u64(s, "vehicles"), reports = (uint64_t)num(j, "reports");
    if (stored != vehicles || (uint64_t)num(j, "daemon_processed") != reports) {
        fprintf(stderr, "bench_daemon: memory: hubcapd holds %llu vehicles and processed %llu"
                " of %llu reports; expected %u vehicles and every report\n",
                (unsigned long long)stored, (unsigned long long)num(j, "daemon_processed"),
                (unsigned long long)reports, vehicles);
        goto out;
    }
    sleep_ms(500);
    if (proc_rss(d->pid, &r1) < 0)
        goto out;
    rc = 0;
    if (!print)
        goto out;
    double n = vehicles;
    double vm = ((double)r1.vm - (double)r0.vm) / n;
    double anon = ((double)r1.anon - (double)r0.anon) / n;
    double file = ((double)r1.file - (double)r0.file) / n;
    printf("# memory: one hubcapd with default settings (%zu worker%s, window 16), RSS read"
           " from /proc/PID/status once ready and empty, then after hubcap-loadgen sent %u"
           " vehicles x 1 session x 16 parked fixes (full windows, no tows; %llu reports) and"
           " hubcapd processed and committed them all\n",
           n_workers(s), n_workers(s) == 1 ? "" : "s", vehicles, (unsigned long long)reports);
    printf("# command: %s\n# command: %s\n", d->cmd, cmd);
    printf("# load: hubcapd processed and committed the %llu reports in %.1f s from the first"
           " send: %.0f reports/s (loadgen sent for %.1f s)\n", (unsigned long long)reports,
           num(j, "daemon_seconds"), num(j, "daemon_per_second"), num(j, "send_seconds"));
    print_rss("empty", &r0);
    print_rss("loaded", &r1);
    printf("# data dir on disk after loading: %.1f MiB (LMDB shards, alarms.log)\n",
           (double)disk_usage(d->dir) / 1048576);
    printf("BENCH daemon_rss_per_vehicle %.0f B\n", vm);
    printf("BENCH daemon_rss_anon_per_vehicle %.0f B\n", anon);
    printf("BENCH daemon_rss_file_per_vehicle %.0f B\n", file);
    verdict("512 B", vm <= 512,
            "daemon_rss_per_vehicle <= 512 B, VmRSS delta; anon and file-backed shown above");
out:
    json_decref(s);
    json_decref(j);
    return rc;
}

/* Restarts d (loaded by bench_memory) on the same data dir, timing each
 * start from fork/exec to hubcapd.json; fails unless every vehicle is back. */
static int bench_restart(struct bench *b, struct daemon *d, unsigned vehicles)
{
    int rounds = b->quick ? 1 : 3, ok = 0, rc = 0;
    double t[MAX_RUNS];
    printf("# restart: the data dir of the memory run (%u vehicles stored, 16 positions each),"
           " %d round%s of SIGTERM, wait for exit, start hubcapd again on it; the figure is the"
           " time from fork/exec to hubcapd.json appearing (page cache warm)\n",
           vehicles, rounds, rounds == 1 ? "" : "s");
    for (int i = 0; i < rounds && !interrupted; i++) {
        double stop_s = 0;
        struct rss r;
        if (daemon_stop(d, &stop_s) < 0 || daemon_start(b, d, NULL) < 0) {
            rc = 1;
            break;
        }
        if (i == 0)
            printf("# command: kill -TERM PID; %s\n", d->cmd);
        json_t *s = daemon_stats(d);
        uint64_t back = s ? stat_u64(s, "vehicles") : 0;
        json_decref(s);
        int have_rss = proc_rss(d->pid, &r) == 0;
        printf("# restart %d: SIGTERM to exit %.3f s; exec to hubcapd.json %.3f s; %llu"
               " vehicles back; VmRSS %.1f MiB (RssAnon %.1f, RssFile %.1f)\n", i + 1, stop_s,
               d->start_s, (unsigned long long)back, have_rss ? (double)r.vm / 1048576 : 0,
               have_rss ? (double)r.anon / 1048576 : 0, have_rss ? (double)r.file / 1048576 : 0);
        if (back != vehicles) {
            fprintf(stderr, "bench_daemon: restart %d: hubcapd has %llu vehicles, expected %u\n",
                    i + 1, (unsigned long long)back, vehicles);
            rc = 1;
            continue;
        }
        t[ok++] = d->start_s;
        fflush(stdout);
    }
    if (ok) {
        double med = bench_median(t, ok);
        printf("BENCH daemon_restart_1m_vehicles_s %.3f s\n", med);
        verdict("3 s", med <= 3.0, "daemon_restart_1m_vehicles_s <= 3 s");
    }
    return rc;
}

/* ---- main ----------------------------------------------------------------------- */

/* The programs: $HUBCAPD and $HUBCAP_LOADGEN, else beside this binary's
 * build directory (build/bench/ -> build/src/, build/tools/). */
static int locate(struct bench *b)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n < 0)
        return -1;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    const char *env = getenv("HUBCAPD");
    if (env && *env)
        snprintf(b->hubcapd, sizeof(b->hubcapd), "%s", env);
    else
        snprintf(b->hubcapd, sizeof(b->hubcapd), "%.*s/../src/hubcapd", PATH_MAX - 20, self);
    env = getenv("HUBCAP_LOADGEN");
    if (env && *env)
        snprintf(b->loadgen, sizeof(b->loadgen), "%s", env);
    else
        snprintf(b->loadgen, sizeof(b->loadgen), "%.*s/../tools/hubcap-loadgen", PATH_MAX - 30,
                 self);
    char real[PATH_MAX];
    if (realpath(b->hubcapd, real))
        snprintf(b->hubcapd, sizeof(b->hubcapd), "%s", real);
    if (realpath(b->loadgen, real))
        snprintf(b->loadgen, sizeof(b->loadgen), "%s", real);
    for (int i = 0; i < 2; i++) {
        const char *p = i ? b->loadgen : b->hubcapd;
        if (access(p, X_OK) < 0) {
            fprintf(stderr, "bench_daemon: %s: %s (build it, or set %s)\n", p, strerror(errno),
                    i ? "HUBCAP_LOADGEN" : "HUBCAPD");
            return -1;
        }
    }
    return 0;
}

static int wanted(const struct bench *b, const char *name)
{
    return !b->only || strcmp(b->only, name) == 0;
}

int main(int argc, char **argv)
{
    struct bench b;
    memset(&b, 0, sizeof(b));
    hc_cli_init(argv[0]);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            b.quick = 1;
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            b.only = argv[++i];
            if (strcmp(b.only, "tcp") && strcmp(b.only, "udp") && strcmp(b.only, "memory") &&
                strcmp(b.only, "restart"))
                hc_cli_usage_error("--only takes tcp, udp, memory or restart, not '%s'", b.only);
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: bench_daemon [--quick] [--only tcp|udp|memory|restart]\n\n"
                   "hubcapd end to end, with hubcap-loadgen on the same machine:\n"
                   "  tcp      reports/s checked and committed over TCP, 5 fresh daemons,\n"
                   "           10,000 vehicles each (floor 1,000,000 reports/s)\n"
                   "  udp      datagrams/s accepted by hubcapd against a plain recvmmsg\n"
                   "           sink, 3 alternating rounds (floor: ratio 0.90)\n"
                   "  memory   RSS per vehicle with 1,000,000 vehicles stored (floor 512 B)\n"
                   "  restart  start time with those vehicles stored, 3 restarts (floor 3 s;\n"
                   "           --only restart loads them first without printing memory)\n"
                   "--quick: small sizes, for the test suite (figures not meaningful).\n"
                   "Programs: $HUBCAPD and $HUBCAP_LOADGEN, else build/src/hubcapd and\n"
                   "build/tools/hubcap-loadgen relative to this binary.  Missed floors are\n"
                   "reported; the exit status is 1 only when a run fails.\n");
            return 0;
        } else {
            hc_cli_usage_error("unknown argument '%s'", argv[i]);
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = { .sa_handler = on_signal };  /* no SA_RESTART: waits wake up */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (locate(&b) < 0)
        return 1;
    snprintf(b.work, sizeof(b.work), "/tmp/hubcap-bench-XXXXXX");
    if (!mkdtemp(b.work)) {
        fprintf(stderr, "bench_daemon: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    char self[512];
    join(self, sizeof(self), (const char *const *)argv);
    printf("# command: %s\n# hubcapd: %s\n# loadgen: %s\n# %ld online CPUs, shared by hubcapd,"
           " hubcap-loadgen and this program%s\n", self, b.hubcapd, b.loadgen,
           sysconf(_SC_NPROCESSORS_ONLN), b.quick ? "; --quick: figures not meaningful" : "");

    int rc = 0;
    if (wanted(&b, "tcp"))
        rc |= bench_tcp(&b);
    if (wanted(&b, "udp"))
        rc |= bench_udp(&b);
    if (wanted(&b, "memory") || wanted(&b, "restart")) {
        struct daemon d;
        memset(&d, 0, sizeof(d));
        unsigned vehicles = b.quick ? 20000 : 1000000;
        if (bench_memory(&b, &d, vehicles, wanted(&b, "memory")) < 0)
            rc = 1;
        else if (wanted(&b, "restart"))
            rc |= bench_restart(&b, &d, vehicles);
        if (daemon_stop(&d, NULL) < 0)
            rc = 1;
        daemon_discard(&d);
    }
    if (interrupted) {
        fprintf(stderr, "bench_daemon: interrupted\n");
        rc = 1;
    }
    if (rm_tree(b.work) < 0) {
        fprintf(stderr, "bench_daemon: cannot remove %s: %s\n", b.work, strerror(errno));
        rc = 1;
    }
    return rc;
}
