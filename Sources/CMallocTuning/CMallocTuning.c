#include "CMallocTuning.h"

// Any C library header defines __GLIBC__ on glibc; without one the check below is always false.
#include <stdlib.h>

#if defined(__GLIBC__)
#include <malloc.h>

int mbdata_tune_malloc(int mmap_threshold, int trim_threshold, int top_pad) {
    int accepted = mallopt(M_MMAP_THRESHOLD, mmap_threshold);
    accepted &= mallopt(M_TRIM_THRESHOLD, trim_threshold);
    accepted &= mallopt(M_TOP_PAD, top_pad);
    return accepted ? 1 : 0;
}

void mbdata_release_free_memory(void) {
    malloc_trim(0);
}
#else
int mbdata_tune_malloc(int mmap_threshold, int trim_threshold, int top_pad) {
    (void)mmap_threshold;
    (void)trim_threshold;
    (void)top_pad;
    return -1;
}

void mbdata_release_free_memory(void) {}
#endif
