/*
 * inifile.c — whole, counted lines for inih (see inifile.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "hubcap/inifile.h"

char *hc_ini_read(char *str, int num, void *stream)
{
    struct hc_ini_lines *r = stream;
    if (r->err_line)
        return NULL;            /* stop at the first error */
    errno = 0;
    ssize_t n = getline(&r->line, &r->cap, r->f);
    if (n < 0) {
        r->read_errno = ferror(r->f) ? errno : 0;
        return NULL;
    }
    r->lineno++;
    if (memchr(r->line, '\0', (size_t)n)) {
        r->err_line = r->lineno;
        snprintf(r->msg, sizeof(r->msg), "line contains a NUL byte");
        return NULL;
    }
    const char *p = r->line;
    if (r->lineno == 1 && strncmp(p, "\xef\xbb\xbf", 3) == 0)
        p += 3;
    while (*p == ' ' || *p == '\t')
        p++;
    n -= p - r->line;
    if (n > num - 1) {
        r->err_line = r->lineno;
        snprintf(r->msg, sizeof(r->msg), "line is longer than %d bytes", num - 2);
        return NULL;
    }
    if (*p == '[' && r->section)
        r->section(r, p);
    memcpy(str, p, (size_t)n + 1);
    return r->err_line ? NULL : str;
}

void hc_ini_lines_free(struct hc_ini_lines *r)
{
    free(r->line);
    r->line = NULL;
    r->cap = 0;
}
