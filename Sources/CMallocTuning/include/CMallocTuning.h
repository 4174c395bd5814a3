#ifndef CMALLOCTUNING_H
#define CMALLOCTUNING_H

/// Raises glibc's mmap threshold to `mmap_threshold` bytes, its trim threshold to
/// `trim_threshold` bytes and its top pad to `top_pad` bytes (mallopt(3)), process-wide.
/// Returns 1 when every setting was accepted, 0 when one was refused, and -1 where the C
/// library is not glibc (nothing is changed there).
int mbdata_tune_malloc(int mmap_threshold, int trim_threshold, int top_pad);

/// Returns the free memory of every malloc arena to the system (malloc_trim(3) on glibc;
/// nothing elsewhere).
void mbdata_release_free_memory(void);

#endif
