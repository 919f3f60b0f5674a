/* Native CPU kernels of the augmentation engine: one sample at a time, every op of the sample in one call.

   The torch path (ops.py, geometry.py) is the reference: each kernel here redoes its arithmetic exactly
   (integers where it is exact in integers, float32 blends in the same order of operations, float64
   tables), so the results are equal byte for byte; tests/augment/test_native.py checks that. Every build
   (native_build.py) disables floating-point contraction: a fused multiply-add would round differently.

   Images are contiguous (B,C,H,W) uint8. Colour ops are given per sample and slot as an op code and a
   float32 argument; the nearest warp as Pillow's 16.16 fixed-point parts of each output row and column
   (geometry.sample_parts). Python calls kdf_apply on disjoint ranges of samples from several threads
   (ctypes releases the GIL), so nothing here is shared between calls.

   The entry point is kdf_apply, or the name in KDF_ENTRY: the wheel's prebuilt library compiles this file
   once per CPU level into kdf_apply_baseline, kdf_apply_avx2, ... and native_dispatch.c's kdf_apply picks
   one (native_build.py holds the commands). */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum {
    OP_NONE = 0,
    OP_AUTOCONTRAST = 1,
    OP_EQUALIZE = 2,
    OP_INVERT = 3,
    OP_POSTERIZE = 4,
    OP_SOLARIZE = 5,
    OP_SOLARIZE_ADD = 6,
    OP_COLOR = 7,
    OP_CONTRAST = 8,
    OP_BRIGHTNESS = 9,
    OP_SHARPNESS = 10,
};

#define MAX_FACTOR 512.0f /* ops._MAX_FACTOR */

static inline uint8_t clamp_truncate(float v) {
    if (v < 0.0f) v = 0.0f;
    if (v > 255.0f) v = 255.0f;
    return (uint8_t)v;
}

static inline float factor_of(float argument) { return argument > MAX_FACTOR ? MAX_FACTOR : argument; }

/* Pillow's blend with a per-pixel degenerate image: ((v - d) * f + d), clipped and truncated. */
static inline uint8_t blend(float v, float d, float f) { return clamp_truncate((v - d) * f + d); }

static void map_table(uint8_t *plane, int64_t pixels, const uint8_t *table) {
    for (int64_t p = 0; p < pixels; p++) plane[p] = table[plane[p]];
}

/* Four interleaved counters, summed at the end: runs of equal pixels would serialise on one counter. */
static void histogram(const uint8_t *plane, int64_t pixels, int64_t *hist) {
    int32_t part[4][256] = {{0}};
    int64_t p = 0;
    for (; p + 4 <= pixels; p += 4) {
        part[0][plane[p]]++;
        part[1][plane[p + 1]]++;
        part[2][plane[p + 2]]++;
        part[3][plane[p + 3]]++;
    }
    for (; p < pixels; p++) part[0][plane[p]]++;
    for (int v = 0; v < 256; v++) hist[v] = (int64_t)part[0][v] + part[1][v] + part[2][v] + part[3][v];
}

static void equalize_plane(uint8_t *plane, int64_t pixels) {
    int64_t hist[256] = {0};
    histogram(plane, pixels, hist);
    int highest = 255;
    while (highest > 0 && hist[highest] == 0) highest--;
    int64_t step = (pixels - hist[highest]) / 255;
    if (step <= 0) return;
    /* (pixels below v + step // 2) // step, capped at 255; the float64 quotient of integers below 2**53
       floors to the integer one, and unlike it vectorises */
    double below[256], half = (double)(step / 2), divisor = (double)step;
    below[0] = 0.0;
    for (int v = 1; v < 256; v++) below[v] = below[v - 1] + (double)hist[v - 1];
    uint8_t table[256];
    for (int v = 0; v < 256; v++) {
        double level = floor((below[v] + half) / divisor);
        table[v] = (uint8_t)(level > 255.0 ? 255.0 : level);
    }
    map_table(plane, pixels, table);
}

static void autocontrast_plane(uint8_t *plane, int64_t pixels) {
    int low = 255, high = 0;
    for (int64_t p = 0; p < pixels; p++) {
        if (plane[p] < low) low = plane[p];
        if (plane[p] > high) high = plane[p];
    }
    if (high <= low) return;
    double scale = 255.0 / (double)(high - low);
    double offset = -(double)low * scale;
    uint8_t table[256];
    for (int v = 0; v < 256; v++) {
        double level = (double)v * scale + offset;
        level = level < 0.0 ? 0.0 : (level > 255.0 ? 255.0 : level);
        table[v] = (uint8_t)floor(level);
    }
    map_table(plane, pixels, table);
}

/* Pillow's RGB -> L of one pixel. */
static inline int luma_at(const uint8_t *image, int64_t pixels, int64_t p) {
    return (19595 * image[p] + 38470 * image[pixels + p] + 7471 * image[2 * pixels + p] + 32768) >> 16;
}

static void color_image(uint8_t *image, int channels, int64_t pixels, float factor) {
    if (channels == 1) return; /* a grey image is its own grey version */
    for (int64_t p = 0; p < pixels; p++) {
        float grey = (float)luma_at(image, pixels, p);
        for (int c = 0; c < 3; c++) image[c * pixels + p] = blend(image[c * pixels + p], grey, factor);
    }
}

static void contrast_image(uint8_t *image, int channels, int64_t pixels, float factor) {
    int64_t total = 0;
    for (int64_t p = 0; p < pixels; p++) total += channels == 1 ? image[p] : luma_at(image, pixels, p);
    float mean = (float)((2 * total + pixels) / (2 * pixels)); /* Pillow's int(mean + 0.5) */
    for (int64_t p = 0; p < channels * pixels; p++) image[p] = blend(image[p], mean, factor);
}

static void brightness_image(uint8_t *image, int64_t values, float factor) {
    for (int64_t p = 0; p < values; p++) image[p] = clamp_truncate((float)image[p] * factor);
}

/* The SMOOTH filter's blend inside the one-pixel border; ``copy`` holds the image's values meanwhile.
   Each plane is one flat loop over its inner rows (long, so it vectorises at any width); the border
   columns it passes through are then put back from the copy. */
static void sharpness_image(uint8_t *image, uint8_t *copy, int channels, int height, int width, float factor) {
    if (height < 3 || width < 3) return;
    int64_t pixels = (int64_t)height * width, w = width;
    memcpy(copy, image, (size_t)(channels * pixels));
    for (int c = 0; c < channels; c++) {
        const uint8_t *in = copy + c * pixels;
        uint8_t *out = image + c * pixels;
        for (int64_t p = w + 1; p < pixels - w - 1; p++) {
            int32_t total = in[p - w - 1] + in[p - w] + in[p - w + 1] + in[p - 1] + 5 * in[p] + in[p + 1] +
                            in[p + w - 1] + in[p + w] + in[p + w + 1];
            out[p] = blend(in[p], (float)((total + 6) / 13), factor);
        }
        for (int y = 1; y < height - 1; y++) {
            out[y * w] = in[y * w];
            out[y * w + w - 1] = in[y * w + w - 1];
        }
    }
}

static void colour_op(int op, float argument, uint8_t *image, uint8_t *scratch, int channels, int height,
                      int width) {
    int64_t pixels = (int64_t)height * width, values = channels * pixels;
    switch (op) {
    case OP_AUTOCONTRAST:
        for (int c = 0; c < channels; c++) autocontrast_plane(image + c * pixels, pixels);
        break;
    case OP_EQUALIZE:
        for (int c = 0; c < channels; c++) equalize_plane(image + c * pixels, pixels);
        break;
    case OP_INVERT:
        for (int64_t p = 0; p < values; p++) image[p] = 255 - image[p];
        break;
    case OP_POSTERIZE: {
        int bits = argument < 0.0f ? 0 : (argument > 8.0f ? 8 : (int)argument); /* 0..8 from the level table */
        uint8_t mask = (uint8_t)((255 << (8 - bits)) & 255);
        for (int64_t p = 0; p < values; p++) image[p] &= mask;
        break;
    }
    case OP_SOLARIZE: {
        int threshold = (int)ceilf(argument);
        for (int64_t p = 0; p < values; p++) image[p] = image[p] < threshold ? image[p] : 255 - image[p];
        break;
    }
    case OP_SOLARIZE_ADD: {
        float shift_f = floorf(argument);
        int shift = (int)(shift_f < -255.0f ? -255.0f : (shift_f > 255.0f ? 255.0f : shift_f));
        for (int64_t p = 0; p < values; p++) {
            if (image[p] >= 128) continue;
            int v = image[p] + shift;
            image[p] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
        }
        break;
    }
    case OP_COLOR:
        color_image(image, channels, pixels, factor_of(argument));
        break;
    case OP_CONTRAST:
        contrast_image(image, channels, pixels, factor_of(argument));
        break;
    case OP_BRIGHTNESS:
        brightness_image(image, values, factor_of(argument));
        break;
    case OP_SHARPNESS:
        sharpness_image(image, scratch, channels, height, width, factor_of(argument));
        break;
    default:
        break;
    }
}

/* Nearest resample of one sample: output (row j, column i) reads input pixel
   ((rows[0][j] + cols[0][i]) >> 16, (rows[1][j] + cols[1][i]) >> 16), or ``fill`` outside the image.
   ``in`` holds each channel plane followed by one fill pixel (plane stride pixels + 1), so a point
   outside reads that pixel and the gather needs no branch; ``offsets`` has room for one row. */
static void warp_nearest(const uint8_t *in, uint8_t *out, int channels, int height, int width,
                         const int32_t *rows, const int32_t *cols, int32_t *offsets) {
    int64_t pixels = (int64_t)height * width, stride = pixels + 1;
    const int32_t *row_x = rows, *row_y = rows + height, *col_x = cols, *col_y = cols + width;
    for (int j = 0; j < height; j++) {
        for (int i = 0; i < width; i++) {
            int32_t px = (row_x[j] + col_x[i]) >> 16, py = (row_y[j] + col_y[i]) >> 16;
            int inside = px >= 0 && px < width && py >= 0 && py < height;
            offsets[i] = inside ? py * width + px : (int32_t)pixels;
        }
        for (int c = 0; c < channels; c++) {
            const uint8_t *plane = in + c * stride;
            uint8_t *target = out + c * pixels + (int64_t)j * width;
            for (int i = 0; i < width; i++) target[i] = plane[offsets[i]];
        }
    }
}

/* The nearest warp of a sample whose output rows are runs of one input row (shifts, crops, mirrors):
   output (j, i) reads input row (rows[1][j] + cols[1][0]) >> 16 at column first + i, or first - i where
   ``backward``, with first = (rows[0][j] + cols[0][0]) >> 16 (geometry.row_runs finds these samples). */
static void warp_runs(const uint8_t *in, uint8_t *out, int channels, int height, int width, const int32_t *rows,
                      const int32_t *cols, int backward, uint8_t fill) {
    int64_t pixels = (int64_t)height * width;
    for (int j = 0; j < height; j++) {
        int64_t first = (rows[j] + cols[0]) >> 16, source = (rows[height + j] + cols[width]) >> 16;
        /* the output columns [low, high) that read inside the input row */
        int64_t low = backward ? first - width + 1 : -first, high = backward ? first + 1 : width - first;
        low = low < 0 ? 0 : (low > width ? width : low);
        high = high > width ? width : (high < low ? low : high);
        if (source < 0 || source >= height) low = high = 0;
        for (int c = 0; c < channels; c++) {
            uint8_t *target = out + c * pixels + (int64_t)j * width;
            const uint8_t *line = in + c * pixels + source * width;
            memset(target, fill, (size_t)low);
            if (backward)
                for (int64_t i = low; i < high; i++) target[i] = line[first - i];
            else
                memcpy(target + low, line + first + low, (size_t)(high - low));
            memset(target + high, fill, (size_t)(width - high));
        }
    }
}

enum { WARP_NONE = 0, WARP_GATHER = 1, WARP_RUNS = 2, WARP_RUNS_BACKWARD = 3 };

/* Samples [start, end): the colour ops of each slot in order, then each sample's warp (``warps[b]``, one
   of WARP_*).

   ops, arguments: (B,S) op codes and float32 arguments. rows: (B,2,H), cols: (B,2,W) int32 (ignored
   where the warp is WARP_NONE). Returns 0, or -1 if memory ran out. */
#ifndef KDF_ENTRY
#define KDF_ENTRY kdf_apply
#endif

#ifdef KDF_LEVEL
/* A library of this file alone (the run-time build) names its level, as the prebuilt dispatcher does. */
const char *kdf_level(void) { return KDF_LEVEL; }
#endif

int KDF_ENTRY(const uint8_t *x, uint8_t *out, int64_t start, int64_t end, int channels, int height, int width,
              int slots, const int32_t *ops, const float *arguments, const uint8_t *warps, const int32_t *rows,
              const int32_t *cols, int fill) {
    int64_t pixels = (int64_t)height * width, values = channels * pixels;
    /* image, and scratch for sharpness (a copy) or the warp (planes with a fill pixel, one row of offsets) */
    size_t scratch_bytes = (size_t)(((values + channels + 15) & ~(int64_t)15) + 4 * (int64_t)width);
    uint8_t *image = malloc((size_t)values), *scratch = malloc(scratch_bytes);
    if (!image || !scratch) {
        free(image);
        free(scratch);
        return -1;
    }
    for (int64_t b = start; b < end; b++) {
        memcpy(image, x + b * values, (size_t)values);
        for (int s = 0; s < slots; s++)
            colour_op(ops[b * slots + s], arguments[b * slots + s], image, scratch, channels, height, width);
        const int32_t *sample_rows = rows + b * 2 * height, *sample_cols = cols + b * 2 * width;
        if (warps[b] == WARP_NONE) {
            memcpy(out + b * values, image, (size_t)values);
            continue;
        }
        if (warps[b] != WARP_GATHER) {
            warp_runs(image, out + b * values, channels, height, width, sample_rows, sample_cols,
                      warps[b] == WARP_RUNS_BACKWARD, (uint8_t)fill);
            continue;
        }
        for (int c = 0; c < channels; c++) {
            memcpy(scratch + c * (pixels + 1), image + c * pixels, (size_t)pixels);
            scratch[c * (pixels + 1) + pixels] = (uint8_t)fill;
        }
        int32_t *offsets = (int32_t *)(scratch + ((values + channels + 15) & ~(int64_t)15));
        warp_nearest(scratch, out + b * values, channels, height, width, sample_rows, sample_cols, offsets);
    }
    free(image);
    free(scratch);
    return 0;
}
