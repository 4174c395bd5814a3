#ifndef MBDATA_FUZZER_DRIVER_H
#define MBDATA_FUZZER_DRIVER_H
#include <stddef.h>
#include <stdint.h>

/// Runs libFuzzer's driver (flags, corpus folders, crash artifacts) over `test_one_input`.
/// Linked from clang's libFuzzer runtime when the binary is built with -sanitize=fuzzer.
int mbdata_fuzzer_run(int *argc, char ***argv, int (*test_one_input)(const uint8_t *data, size_t size));

#endif
