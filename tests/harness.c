/*
 * harness.c — see harness.h.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "hubcap/ctl.h"
#include "hubcap/wire.h"

static void sleep_ms(int ms)
{
    nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L }, NULL);
}

void daemon_start(struct daemon *d, const char *const *sets)
{
    const char *bin = getenv("HUBCAPD");
    cr_assert_not_null(bin, "set HUBCAPD to the hubcapd binary");
    if (!d->dir[0]) {
        snprintf(d->dir, sizeof(d->dir), "/tmp/hubcap-test-XXXXXX");
        cr_assert_not_null(mkdtemp(d->dir));
    }
    char ready[300];
    snprintf(ready, sizeof(ready), "%s/hubcapd.json", d->dir);
    unlink(ready);
    const char *argv[64];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "--data-dir";
    argv[n++] = d->dir;
    /* Ports picked by the kernel; short commit interval; quiet logs. */
    static const char *const base[] = { "msgpack.port=0", "jt808.port=0", "teltonika.port=0",
                                        "store.commit_interval_ms=5", "core.log_level=warn",
                                        "core.workers=2", NULL };
    for (int i = 0; base[i]; i++) {
        argv[n++] = "--set";
        argv[n++] = base[i];
    }
    for (int i = 0; sets && sets[i] && n < 60; i++) {
        argv[n++] = "--set";
        argv[n++] = sets[i];
    }
    argv[n] = NULL;
    d->pid = fork();
    cr_assert_geq(d->pid, 0);
    if (d->pid == 0) {
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) {       /* up to 10 s (sanitizer builds are slow) */
        json_t *j = json_load_file(ready, 0, NULL);
        if (j) {
            d->tcp = (unsigned)json_integer_value(json_object_get(j, "msgpack_tcp"));
            d->udp = (unsigned)json_integer_value(json_object_get(j, "msgpack_udp"));
            d->jt808 = (unsigned)json_integer_value(json_object_get(j, "jt808"));
            d->teltonika = (unsigned)json_integer_value(json_object_get(j, "teltonika"));
            snprintf(d->control, sizeof(d->control), "%s",
                     json_string_value(json_object_get(j, "control")));
            json_decref(j);
            return;
        }
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            d->pid = 0;     /* reaped: daemon_cleanup must not signal or wait for it */
            cr_assert_fail("hubcapd exited during start-up (status %d)", st);
        }
        sleep_ms(10);
    }
    cr_assert_fail("hubcapd did not become ready");
}

static int wait_exit(struct daemon *d)
{
    int st = 0;
    for (int i = 0; i < 3000; i++) {
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            d->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
        }
        sleep_ms(10);
    }
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &st, 0);
    d->pid = 0;
    cr_assert_fail("hubcapd did not exit within 30 s");
    return -1;
}

int daemon_stop(struct daemon *d)
{
    kill(d->pid, SIGTERM);
    return wait_exit(d);
}

void daemon_kill(struct daemon *d)
{
    kill(d->pid, SIGKILL);
    wait_exit(d);
}

void daemon_cleanup(struct daemon *d)
{
    if (d->pid > 0)
        daemon_kill(d);
    if (d->dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
        int rc = system(cmd);
        (void)rc;
    }
}

json_t *daemon_control(const struct daemon *d, const char *request)
{
    json_t *j = hc_ctl_call(d->control, request, 10000);
    cr_assert_not_null(j, "no JSON answer on the control socket %s", d->control);
    return j;
}

uint64_t daemon_stat(const struct daemon *d, const char *path)
{
    json_t *a = daemon_control(d, "{\"cmd\":\"stats\"}\n");
    json_t *v = hc_json_path(json_object_get(a, "stats"), path);
    cr_assert_not_null(v, "no stat %s", path);
    uint64_t n = (uint64_t)json_integer_value(v);
    json_decref(a);
    return n;
}

void daemon_wait_processed(const struct daemon *d, uint64_t n)
{
    for (int i = 0; i < 1000; i++) {
        json_t *a = daemon_control(d, "{\"cmd\":\"stats\"}\n");
        json_t *s = json_object_get(a, "stats");
        uint64_t got = (uint64_t)json_integer_value(json_object_get(s, "reports"));
        uint64_t dirty = 0;
        size_t k;
        json_t *w;
        json_array_foreach(json_object_get(s, "workers"), k, w)
            dirty += (uint64_t)json_integer_value(json_object_get(w, "dirty"));
        json_decref(a);
        if (got >= n && dirty == 0)
            return;
        sleep_ms(10);
    }
    cr_assert_fail("hubcapd did not process %llu reports within 10 s", (unsigned long long)n);
}

json_t *daemon_alarms(const struct daemon *d)
{
    char path[300], line[8192];
    snprintf(path, sizeof(path), "%s/alarms.log", d->dir);
    json_t *all = json_array();
    FILE *f = fopen(path, "r");
    if (!f)
        return all;
    while (fgets(line, sizeof(line), f)) {
        json_t *j = json_loads(line, 0, NULL);
        cr_assert_not_null(j, "alarms.log line is not JSON: %s", line);
        json_array_append_new(all, j);
    }
    fclose(f);
    return all;
}

size_t daemon_alarm_count(const struct daemon *d)
{
    json_t *alarms = daemon_alarms(d);
    size_t n = json_array_size(alarms);
    json_decref(alarms);
    return n;
}

int tcp_connect(unsigned port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
                 strerror(errno));
    return fd;
}

size_t frame_reports(const struct hc_report *r, size_t n, uint8_t *out, size_t cap)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++)
        hc_wire_pack(&pk, &r[i]);
    cr_assert_leq(sb.size + 4, cap);
    hc_wire_frame_header(out, (uint32_t)sb.size);
    memcpy(out + 4, sb.data, sb.size);
    size_t len = sb.size + 4;
    msgpack_sbuffer_destroy(&sb);
    return len;
}

void send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        cr_assert_gt(n, 0, "send: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

void send_reports_tcp(int fd, const struct hc_report *r, size_t n)
{
    size_t cap = n * 200 + 64;
    uint8_t *buf = malloc(cap);
    send_all(fd, buf, frame_reports(r, n, buf, cap));
    free(buf);
}

void send_reports_udp(unsigned port, const struct hc_report *r, size_t n)
{
    uint8_t buf[65536];
    size_t len = frame_reports(r, n, buf, sizeof(buf));
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    cr_assert_eq(sendto(fd, buf + 4, len - 4, 0, (struct sockaddr *)&sa, sizeof(sa)),
                 (ssize_t)(len - 4));
    close(fd);
}

int peer_closed(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, timeout_ms) <= 0)
        return 0;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

struct hc_report report(const char *vid, int64_t ts, double lat, double lon, int acc,
                        const char *maker)
{
    struct hc_report r;
    memset(&r, 0, sizeof(r));
    r.vid_len = (uint8_t)strlen(vid);
    memcpy(r.vid, vid, r.vid_len);
    r.ts = ts;
    r.lat = lat;
    r.lon = lon;
    r.acc = (uint8_t)acc;
    if (maker) {
        r.maker_len = (uint8_t)strlen(maker);
        memcpy(r.maker, maker, r.maker_len);
    }
    return r;
}
