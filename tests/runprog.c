/*
 * runprog.c — running a program from a test (see runprog.h).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runprog.h"

#define ARGS_MAX 64

void test_dir_make(char *dir, size_t cap, const char *name)
{
    snprintf(dir, cap, "/tmp/hubcap-%s-test-XXXXXX", name);
    cr_assert_not_null(mkdtemp(dir), "cannot make %s", dir);
}

void test_dir_remove(char *dir)
{
    if (!dir[0])
        return;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    int rc = system(cmd);
    (void)rc;
    dir[0] = '\0';
}

const char *path_in_dir(const char *dir, const char *name)
{
    static char buf[32][256];
    static unsigned k;
    char *p = buf[k++ % 32];
    snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
    return p;
}

char *slurp_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot read %s", path);
    char *buf = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&buf, &n);
    cr_assert_not_null(m);
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, got, m);
    fclose(m);
    fclose(f);
    if (len)
        *len = n;
    return buf;
}

void write_text_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

struct prog_run prog_run(const char *bin_env, const char *const *args, const char *stdin_path,
                         const char *dir)
{
    const char *bin = getenv(bin_env);
    cr_assert_not_null(bin, "set %s to the binary", bin_env);
    const char *argv[ARGS_MAX + 1];
    int n = 0;
    argv[n++] = bin;
    for (int i = 0; args[i]; i++) {
        cr_assert_lt(n, ARGS_MAX, "too many arguments");
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    char out_path[256], err_path[256];
    snprintf(out_path, sizeof(out_path), "%s/.stdout", dir);
    snprintf(err_path, sizeof(err_path), "%s/.stderr", dir);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int in = open(stdin_path ? stdin_path : "/dev/null", O_RDONLY);
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
            dup2(err, 2) < 0)
            _exit(126);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    struct prog_run r = { .status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st) };
    r.out = slurp_file(out_path, NULL);
    r.err = slurp_file(err_path, NULL);
    r.json = json_loads(r.out, 0, NULL);
    return r;
}

void prog_run_free(struct prog_run *r)
{
    free(r->out);
    free(r->err);
    json_decref(r->json);
    r->out = r->err = NULL;
    r->json = NULL;
}
