/*
 * What every fuzz target provides (libFuzzer's entry point) and the check
 * they use for invariants: a failed check aborts, which libFuzzer and the
 * standalone driver both report as a crash with the input that caused it.
 */
#ifndef PETREL_FUZZ_H
#define PETREL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
