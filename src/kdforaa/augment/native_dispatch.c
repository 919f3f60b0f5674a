/* The prebuilt library's entry point (native_build.py links it with the kernels): kdf_apply runs the
   fastest build of native_kernels.c that this CPU can execute, chosen once when the library is loaded.

   native_kernels.c is compiled once per CPU level into kdf_apply_<level>; each KDF_WITH_<LEVEL> macro
   says which levels this library holds. The levels give the same bytes (no fused multiply-add in any
   of them), so the choice changes only the speed. kdf_level() names the chosen level and
   kdf_source_digest() the kernel sources the library was built from (KDF_SOURCE_DIGEST), so that the
   loader never runs a library left over from other sources. */

#include <stdint.h>

#define KDF_PARAMETERS                                                                                        \
    const uint8_t *x, uint8_t *out, int64_t start, int64_t end, int channels, int height, int width, int slots, \
        const int32_t *ops, const float *arguments, const uint8_t *warps, const int32_t *rows,                 \
        const int32_t *cols, int fill

typedef int (*kdf_apply_fn)(KDF_PARAMETERS);

int kdf_apply_baseline(KDF_PARAMETERS);
#ifdef KDF_WITH_AVX2
int kdf_apply_avx2(KDF_PARAMETERS);
#endif

#ifndef KDF_SOURCE_DIGEST
#error "KDF_SOURCE_DIGEST must name the digest of the kernel sources (native_build.py passes it)"
#endif

static kdf_apply_fn chosen = kdf_apply_baseline;
static const char *chosen_level = "baseline";

/* Runs when the library is loaded, before any call: kdf_apply then needs no lock. */
__attribute__((constructor)) static void choose_level(void) {
#ifdef KDF_WITH_AVX2
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        chosen = kdf_apply_avx2;
        chosen_level = "avx2";
    }
#endif
}

const char *kdf_level(void) { return chosen_level; }

const char *kdf_source_digest(void) { return KDF_SOURCE_DIGEST; }

int kdf_apply(KDF_PARAMETERS) {
    return chosen(x, out, start, end, channels, height, width, slots, ops, arguments, warps, rows, cols, fill);
}
