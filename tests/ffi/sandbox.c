/*
 * A C program using sandlock through include/sandlock.h, compiled and run
 * by sandlock-ffi/tests/c_program.rs. It runs real sandboxes: a file
 * inside the --fs-read allowlist is read, one outside it is refused; a
 * loopback port inside the --net-allow allowlist is reached, another one
 * is refused. It also checks a bad rule string's error, stdin bytes, and a
 * copy-on-write run whose changes are discarded.
 *
 * Usage: sandbox GRANTED_DIR OTHER_DIR ALLOWED_PORT DENIED_PORT
 * Prints one "ok ..." line per check; exits 0 only when all pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandlock.h"

static int failures = 0;

static void check(int cond, const char *what) {
    printf("%s %s\n", cond ? "ok" : "FAIL", what);
    if (!cond) failures++;
}

/* Sets an option that must be accepted, or exits. */
static void set(sandlock_builder *b, const char *option, const char *value) {
    sandlock_error *err = NULL;
    if (sandlock_builder_set(b, option, value, &err) != SANDLOCK_OK) {
        fprintf(stderr, "set %s=%s: %s\n", option, value, sandlock_error_message(err));
        sandlock_error_free(err);
        exit(2);
    }
}

/* Runs argv with output captured, or exits; the caller frees the result. */
static sandlock_result *run(const sandlock_builder *b, const char *const *argv, size_t argc,
                            const char *input) {
    sandlock_result *r = NULL;
    sandlock_error *err = NULL;
    sandlock_code code = sandlock_run(b, argv, argc, (const uint8_t *)input,
                                      input ? strlen(input) : 0, 1, &r, &err);
    if (code != SANDLOCK_OK) {
        fprintf(stderr, "run %s: %s\n", argv[0], sandlock_error_message(err));
        sandlock_error_free(err);
        exit(2);
    }
    return r;
}

/* Whether the captured stream `which` (1 stdout, 2 stderr) holds `needle`. */
static int holds(const sandlock_result *r, int which, const char *needle) {
    const uint8_t *data = NULL;
    size_t len = 0;
    if ((which == 1 ? sandlock_result_stdout : sandlock_result_stderr)(r, &data, &len) !=
        SANDLOCK_OK)
        return 0;
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(data + i, needle, n) == 0) return 1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s GRANTED_DIR OTHER_DIR ALLOWED_PORT DENIED_PORT\n", argv[0]);
        return 2;
    }
    char granted[4096], other[4096], allow[64];
    snprintf(granted, sizeof granted, "%s/file", argv[1]);
    snprintf(other, sizeof other, "%s/file", argv[2]);
    snprintf(allow, sizeof allow, "127.0.0.1:%s", argv[3]);

    sandlock_builder *b = sandlock_builder_new();
    set(b, "quiet", "true");
    set(b, "fs-read", argv[1]);
    set(b, "net-allow", allow);

    /* A bad rule string is refused with a message naming flag and value. */
    sandlock_error *err = NULL;
    sandlock_code code = sandlock_builder_set(b, "http-allow", "FETCH", &err);
    check(code == SANDLOCK_ERR_INVALID_VALUE && sandlock_error_code(err) == code,
          "a bad http-allow rule is SANDLOCK_ERR_INVALID_VALUE");
    check(err && strstr(sandlock_error_message(err), "'--http-allow'") &&
              strstr(sandlock_error_message(err), "'FETCH'"),
          "its message names the flag and the value");
    sandlock_error_free(err);

    const char *cat_granted[] = {"cat", granted};
    sandlock_result *r = run(b, cat_granted, 2, NULL);
    check(sandlock_result_exit_code(r) == 0 && holds(r, 1, "granted bytes"),
          "cat of a file in the fs-read allowlist prints it");
    sandlock_result_free(r);

    const char *cat_other[] = {"cat", other};
    r = run(b, cat_other, 2, NULL);
    check(sandlock_result_exit_code(r) == 1 && !holds(r, 1, "other bytes") &&
              holds(r, 2, "Permission denied"),
          "cat of a file outside the allowlist is refused");
    sandlock_result_free(r);

    const char *connect_code =
        "import socket, sys\n"
        "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)\n"
        "print(s.recv(64).decode())\n";
    const char *connect_allowed[] = {"/usr/bin/python3", "-c", connect_code, argv[3]};
    r = run(b, connect_allowed, 4, NULL);
    check(sandlock_result_exit_code(r) == 0 && holds(r, 1, "hello from loopback"),
          "a connect to the allowed port reaches the server");
    sandlock_result_free(r);

    const char *connect_denied[] = {"/usr/bin/python3", "-c", connect_code, argv[4]};
    r = run(b, connect_denied, 4, NULL);
    check(sandlock_result_exit_code(r) == 1 && holds(r, 2, "PermissionError") &&
              !holds(r, 1, "hello"),
          "a connect to another port is refused with EACCES");
    sandlock_result_free(r);

    const char *upper[] = {"tr", "a-z", "A-Z"};
    r = run(b, upper, 3, "fed through stdin");
    check(sandlock_result_exit_code(r) == 0 && holds(r, 1, "FED THROUGH STDIN"),
          "stdin bytes reach the workload");
    sandlock_result_free(r);

    /* A copy-on-write run: the workload changes OTHER_DIR/file through
     * its layer, the changes are discarded, the host keeps its bytes. */
    sandlock_builder *c = sandlock_builder_new();
    set(c, "quiet", "true");
    set(c, "cow", argv[2]);
    set(c, "on-exit", "discard");
    set(c, "cow-summary", "none");
    const char *change[] = {"/bin/sh", "-c", "echo changed > \"$1\" && cat \"$1\"", "sh", other};
    r = run(c, change, 5, NULL);
    const char *cow = sandlock_result_cow(r);
    check(sandlock_result_status(r) == 0 && holds(r, 1, "changed") && cow &&
              strstr(cow, "\"changed\":[\"file\"]") && strstr(cow, "\"result\":\"discarded\""),
          "a cow run changes the file in its layer and reports it discarded");
    sandlock_result_free(r);
    char host[64] = {0};
    FILE *f = fopen(other, "r");
    if (f) {
        if (!fgets(host, sizeof host, f)) host[0] = 0;
        fclose(f);
    }
    check(strcmp(host, "other bytes") == 0, "the host's file keeps its bytes");
    sandlock_builder_free(c);

    sandlock_builder_free(b);
    printf("%d failed\n", failures);
    return failures == 0 ? 0 : 1;
}
