/*
 * run: runs a command that may read DIR (and the minimal system view every
 * sandbox gets) but nothing else, and has no network. What the command
 * prints is captured and printed, and run exits with the status
 * `sandlock run` would (the command's exit code, 128 + a signal, 124 for a
 * timeout). When sandlock cannot set up or start the command (DIR missing,
 * the command not found), run prints sandlock's error and exits 1.
 *
 * Usage: run DIR COMMAND [ARG...]
 *   e.g. run /srv/data cat /srv/data/report.txt
 *
 * Build it against an installed sandlock (scripts/install.sh):
 *   cc -o run examples/c/run.c $(pkg-config --cflags --libs sandlock)
 * or against the build tree:
 *   cc -o run examples/c/run.c -I include -L target/release -lsandlock_ffi \
 *      -Wl,-rpath,"$PWD/target/release"
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "sandlock.h"

/* Prints what failed and sandlock's message, frees the error; returns 1. */
static int fail(const char *what, sandlock_error *err) {
    const char *msg = sandlock_error_message(err); /* borrowed from err */
    fprintf(stderr, "run: %s: %s (code %d)\n", what, msg ? msg : "unknown error",
            (int)sandlock_error_code(err));
    sandlock_error_free(err);
    return 1;
}

/* Writes `len` bytes to `f`; 0 on success. */
static int put(FILE *f, const uint8_t *data, size_t len) {
    return (len > 0 && fwrite(data, 1, len, f) != len) || fflush(f) != 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s DIR COMMAND [ARG...]   (sandlock %s)\n", argv[0],
                sandlock_version());
        return 2;
    }

    sandlock_builder *b = sandlock_builder_new(); /* ours: freed below */
    sandlock_error *err = NULL;
    if (sandlock_builder_set(b, "fs-read", argv[1], &err) != SANDLOCK_OK) {
        sandlock_builder_free(b);
        return fail("fs-read", err);
    }

    /* The command and its arguments: borrowed for the call only. */
    const char *const *cmd = (const char *const *)(argv + 2);
    sandlock_result *r = NULL;
    if (sandlock_run(b, cmd, (size_t)(argc - 2), NULL, 0, /* capture */ 1, &r, &err) !=
        SANDLOCK_OK) {
        sandlock_builder_free(b);
        return fail("sandlock_run", err);
    }
    sandlock_builder_free(b); /* the result does not need the builder */

    /* Both streams point into the result: valid until it is freed. */
    const uint8_t *out = NULL, *errs = NULL;
    size_t out_len = 0, err_len = 0;
    if (sandlock_result_stdout(r, &out, &out_len) != SANDLOCK_OK ||
        sandlock_result_stderr(r, &errs, &err_len) != SANDLOCK_OK) {
        fprintf(stderr, "run: cannot read the captured output\n");
        sandlock_result_free(r);
        return 1;
    }
    if (put(stdout, out, out_len) || put(stderr, errs, err_len)) {
        perror("run: write");
        sandlock_result_free(r);
        return 1;
    }
    int status = sandlock_result_status(r);
    sandlock_result_free(r);
    return status;
}
