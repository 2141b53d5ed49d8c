/*
 * runprog.h — running one of hubcap's programs from a test: its arguments,
 * stdin from a file, stdout and stderr captured whole (through files in a
 * directory the test owns), its exit status; and the small file helpers
 * such tests share.  Failures are Criterion assertions.
 */
#ifndef HUBCAP_TESTS_RUNPROG_H
#define HUBCAP_TESTS_RUNPROG_H

#include <jansson.h>
#include <stddef.h>

struct prog_run {
    int status;             /* exit status, or 128 + signal */
    char *out, *err;        /* everything written, NUL-terminated */
    json_t *json;           /* stdout parsed, when it is JSON; else NULL */
};

/* Run the program the environment variable bin_env names (meson sets it)
 * with args (NULL-terminated), stdin from stdin_path (NULL: /dev/null);
 * dir holds the capture files. */
struct prog_run prog_run(const char *bin_env, const char *const *args, const char *stdin_path,
                         const char *dir);
void prog_run_free(struct prog_run *r);

/* The whole file at path, NUL-terminated (malloc'd); its length in *len
 * when len is not NULL. */
char *slurp_file(const char *path, size_t *len);

/* Write text to path, replacing it. */
void write_text_file(const char *path, const char *text);

/* A fresh directory /tmp/hubcap-NAME-test-XXXXXX into dir (at least 64
 * bytes), and its removal with everything in it (dir becomes "";
 * nothing happens when dir is already ""). */
void test_dir_make(char *dir, size_t cap, const char *name);
void test_dir_remove(char *dir);

/* dir/name in one of 32 rotating buffers (so a call can take several). */
const char *path_in_dir(const char *dir, const char *name);

#endif
