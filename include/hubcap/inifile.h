/*
 * inifile.h — the line reader hubcap hands to inih's ini_parse_stream, for
 * every INI file it reads (hubcapd's configuration, scenario files).
 *
 * inih reads with fgets into a fixed buffer, splits longer lines in two,
 * stops at a NUL byte, and takes an indented line as a continuation of the
 * value above it.  This reader reads whole lines instead and counts them
 * (for "FILE:LINE" messages), refuses a NUL byte or a line too long for
 * inih's buffer with a message, drops indentation (it means nothing in
 * hubcap's files) and a UTF-8 byte order mark on the first line.
 *
 * Use: fill f (and section, if wanted), pass hc_ini_read and the struct as
 * ini_parse_stream's reader and stream; a handler that refuses a value sets
 * err_line to lineno and its message wherever it keeps messages.  After
 * parsing, ferror(f) with read_errno tells a read error, and err_line with
 * msg[0] != '\0' an error of the reader's own.
 */
#ifndef HUBCAP_INIFILE_H
#define HUBCAP_INIFILE_H

#include <stdio.h>

struct hc_ini_lines {
    FILE *f;
    char *line;                 /* getline buffer: hc_ini_lines_free */
    size_t cap;
    unsigned lineno;            /* lines handed to inih so far */
    unsigned err_line;          /* line of the first error, 0: none; reading stops */
    int read_errno;             /* errno of a failed read, 0: none */
    char msg[128];              /* the reader's own error */
    /* Called with each line that opens a section ('[' first, after any
     * indentation), before inih sees it; may set err_line to stop. */
    void (*section)(struct hc_ini_lines *r, const char *line);
};

/* fgets-style reader for ini_parse_stream; stream is a struct hc_ini_lines. */
char *hc_ini_read(char *str, int num, void *stream);

/* Release the line buffer (not f). */
void hc_ini_lines_free(struct hc_ini_lines *r);

#endif
