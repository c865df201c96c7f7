/* Shared helpers for the C tests: fail loudly with the library's last error. */
#ifndef VS_TEST_CHECK_H
#define VS_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "valuestor.h"

#define CHECK_OK(call)                                                                   \
    do {                                                                                 \
        enum VsStatus check_status_ = (call);                                            \
        if (check_status_ != VS_OK) {                                                    \
            fprintf(stderr, "%s:%d: %s returned %d: %s\n", __FILE__, __LINE__, #call,     \
                    (int)check_status_, vs_last_error());                                \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

#define CHECK_STATUS(call, expected)                                                     \
    do {                                                                                 \
        enum VsStatus check_status_ = (call);                                            \
        if (check_status_ != (expected)) {                                               \
            fprintf(stderr, "%s:%d: %s returned %d, expected %s (%d): %s\n", __FILE__,    \
                    __LINE__, #call, (int)check_status_, #expected, (int)(expected),      \
                    vs_last_error());                                                    \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);      \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

#endif
