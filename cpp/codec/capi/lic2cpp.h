/* lic2cpp.h: the C interface of a codec made by `lic2cpp build` (docs/library.md).
 *
 * The library (lib/liblic2cpp_codec.a or .so) holds one model: its networks and entropy
 * tables are compiled in. A codec context is created with a thread count; it encodes 8-bit
 * RGB pixels into a bitstream and decodes bitstreams into the caller's buffer or, row band
 * by row band, into a callback, within an optional memory budget (images of any size the
 * bitstream allows, decoded in tiles; the pixels are the same).
 *
 *   lic2cpp_codec* c;
 *   if (lic2cpp_create(1, &c) != LIC2CPP_OK) return 1;
 *   uint32_t w, h;
 *   if (lic2cpp_get_info(c, data, size, &w, &h) == LIC2CPP_OK) {
 *     uint8_t* rgb = malloc((size_t)w * h * 3);
 *     if (lic2cpp_decode(c, data, size, rgb, (size_t)w * 3, (size_t)w * h * 3) != LIC2CPP_OK)
 *       fprintf(stderr, "%s\n", lic2cpp_error_message(c));
 *   }
 *   lic2cpp_destroy(c);
 *
 * Every function reports failure through its return value (never exit, abort or a C++
 * exception); the one-line message of a codec's last failure is lic2cpp_error_message().
 * No global state: contexts are independent, and separate contexts may be used from
 * separate threads at once. One context must not be used by two threads at the same time.
 */
#ifndef LIC2CPP_H
#define LIC2CPP_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define LIC2CPP_API __attribute__((visibility("default")))
#else
#define LIC2CPP_API
#endif

/* 2: banded coding (lic2cpp_set_band_rows) and RDOQ (lic2cpp_set_rdoq, ...); 1: first */
#define LIC2CPP_API_VERSION 3

#ifdef __cplusplus
extern "C" {
#endif

/* lic2cpp-cdef-begin (the Python module reads the declarations below, to the end marker) */

typedef enum lic2cpp_status {
  LIC2CPP_OK = 0,
  LIC2CPP_INVALID_ARGUMENT = 1, /* a NULL pointer, a zero size, a stride below 3 * width, ... */
  LIC2CPP_BAD_BITSTREAM = 2,    /* not a bitstream, truncated, corrupt, another model's, ... */
  LIC2CPP_BAD_IMAGE = 3,        /* an image size beyond the limits */
  LIC2CPP_OUT_OF_MEMORY = 4,    /* an allocation failed */
  LIC2CPP_MEMORY_BUDGET = 5,    /* the memory budget cannot hold even the smallest tile */
  LIC2CPP_BUFFER_TOO_SMALL = 6, /* the caller's buffer cannot hold the image */
  LIC2CPP_ABORTED = 7,          /* the row callback returned non-zero */
  LIC2CPP_INTERNAL = 8          /* anything else: the message says what */
} lic2cpp_status;

typedef struct lic2cpp_codec lic2cpp_codec;

/* Sizes and code lengths of an encoded image (what `encoder --stats` prints). */
typedef struct lic2cpp_encode_stats {
  uint32_t latent_height, latent_width, latent_channels;
  size_t header_bytes, payload_bytes;
  double ideal_bits;       /* ideal code length of the payload under the model's tables */
  double ideal_bits_plain; /* the same latent under plain per-channel tables */
} lic2cpp_encode_stats;

/* What RDOQ did in the codec's last successful encode (lic2cpp_get_rdoq_report). Squared
 * errors are over the image's pixels, values in [0, 1]; bits are ideal code lengths. */
typedef struct lic2cpp_rdoq_report {
  double lambda;                /* the lambda in force; 0: plain rounding (all below 0) */
  double bits_plain, sse_plain; /* plain rounding's latent */
  double bits, sse;             /* the chosen latent's */
  int sweeps, accepted;         /* linearisations run, and kept (they lowered the cost) */
  int changed;                  /* latents that differ from plain rounding */
  int passes;                   /* synthesis-sized network passes run */
} lic2cpp_rdoq_report;

/* How a decode is tiled (lic2cpp_plan_decode). */
typedef struct lic2cpp_plan {
  uint32_t tiles_down, tiles_across;    /* 1 x 1: the image in one piece */
  uint32_t window_height, window_width; /* each tile's window, in latent cells */
  uint64_t working_set;                 /* bytes the decode works in (within the budget) */
  uint64_t least;                       /* the smallest budget that can decode the image */
  uint64_t whole;                       /* bytes to decode it in one piece */
  uint64_t budget;                      /* the budget in force (0: none) */
} lic2cpp_plan;

/* Receives decoded rows first_row .. first_row + rows - 1, top to bottom, each 3 * width
 * bytes (R, G, B), row i at rgb + i * stride. The memory is the library's, valid during the
 * call. A non-zero return stops decoding (LIC2CPP_ABORTED). */
typedef int (*lic2cpp_rows_callback)(void* user, const uint8_t* rgb, size_t stride,
                                     uint32_t first_row, uint32_t rows);

/* The API version, and the model's fingerprint (as in the bitstream header). */
LIC2CPP_API int lic2cpp_api_version(void);
LIC2CPP_API uint64_t lic2cpp_model_fingerprint(void);
/* A short name of the status ("bad bitstream", ...); never NULL. */
LIC2CPP_API const char* lic2cpp_status_string(lic2cpp_status status);

/* A codec context using `threads` threads (1 to 256); the output never depends on it. */
LIC2CPP_API lic2cpp_status lic2cpp_create(int threads, lic2cpp_codec** codec);
LIC2CPP_API void lic2cpp_destroy(lic2cpp_codec* codec);
/* The message of the last call on `codec` that failed ("" before any failure); valid until
 * the next call on the codec. */
LIC2CPP_API const char* lic2cpp_error_message(const lic2cpp_codec* codec);
/* Memory budget in bytes of the calls that follow (0, the default: images up to 2^24 pixels
 * in one piece, larger ones in tiles within 1 GiB). Decoding keeps the latent, the tiles'
 * buffers and (lic2cpp_decode_rows) one band of rows within it; encoding, the analysis
 * transform's tiles and the latent they fill. The codec's networks and the caller's buffers
 * are not counted. */
LIC2CPP_API lic2cpp_status lic2cpp_set_max_memory(lic2cpp_codec* codec, uint64_t bytes);
/* Latent rows per independently coded band of the encodes that follow (1 to 65535; default
 * 16): the bands are entropy-coded and decoded in parallel (bitstream 2.0). A height of at
 * least the latent's gives one band, a 1.x stream. Decoding reads any. */
LIC2CPP_API lic2cpp_status lic2cpp_set_band_rows(lic2cpp_codec* codec, uint32_t rows);
/* Start unpacking the embedded encoder's (decoder's) network now rather than on the first
 * encode (decode), so that it overlaps the caller's own work, such as reading its input
 * (API version 3). With 2 or more threads it is unpacked on a thread of the library's own
 * (by all the codec's threads but one) and the call returns at once (the first encode or
 * decode waits for it); with 1 thread it is unpacked before the call returns. Does nothing
 * the second time. */
LIC2CPP_API lic2cpp_status lic2cpp_load_encoder(lic2cpp_codec* codec);
LIC2CPP_API lic2cpp_status lic2cpp_load_decoder(lic2cpp_codec* codec);

/* Encodes width x height RGB pixels (row y at rgb + y * stride, stride >= 3 * width). On
 * success *data holds the bitstream (*size bytes), to be released with lic2cpp_free(). */
LIC2CPP_API lic2cpp_status lic2cpp_encode(lic2cpp_codec* codec, const uint8_t* rgb,
                                          uint32_t width, uint32_t height, size_t stride,
                                          uint8_t** data, size_t* size);
/* lic2cpp_encode, and: *stats filled when stats is not NULL; when latent is not NULL,
 * *latent is the de-quantised latent, float32 (latent_height, latent_width,
 * latent_channels), to be released with lic2cpp_free(). */
LIC2CPP_API lic2cpp_status lic2cpp_encode_ex(lic2cpp_codec* codec, const uint8_t* rgb,
                                             uint32_t width, uint32_t height, size_t stride,
                                             uint8_t** data, size_t* size,
                                             lic2cpp_encode_stats* stats, float** latent);
LIC2CPP_API void lic2cpp_free(void* p);
/* Rate-distortion optimised quantisation (RDOQ, docs/rdoq.md) of the encodes that follow:
 * lambda > 0 chooses the latent's integers for lambda * 255^2 * MSE + bpp with the exact
 * rate of the entropy model and the decoder's own synthesis transform (slower; the
 * bitstream format and the decoder do not change); 0: plain rounding; < 0 (a new context's
 * setting): the library's default, lic2cpp_default_rdoq_lambda(). `sweeps`: linearisations,
 * 0 to 1000, < 0: the default (12). RDOQ needs the context-table entropy model (a hyperprior
 * model has none: LIC2CPP_INVALID_ARGUMENT here) and codes the image in one piece (an image
 * that would need tiles: LIC2CPP_BAD_IMAGE from the encode); its passes of the synthesis
 * transform are not counted in the memory budget. Added in API version 2. */
LIC2CPP_API lic2cpp_status lic2cpp_set_rdoq(lic2cpp_codec* codec, double lambda, int sweeps);
/* The RDOQ lambda the library was built with (`lic2cpp build --rdoq`; 0: plain rounding). */
LIC2CPP_API double lic2cpp_default_rdoq_lambda(void);
/* What RDOQ did in the codec's last successful encode (all 0 before one, or without RDOQ). */
LIC2CPP_API lic2cpp_status lic2cpp_get_rdoq_report(lic2cpp_codec* codec,
                                                   lic2cpp_rdoq_report* report);
/* How lic2cpp_encode would tile the analysis transform for a width x height image within
 * the codec's budget (LIC2CPP_MEMORY_BUDGET as for lic2cpp_plan_decode). */
LIC2CPP_API lic2cpp_status lic2cpp_plan_encode(lic2cpp_codec* codec, uint32_t width,
                                               uint32_t height, lic2cpp_plan* plan);

/* The image size of a bitstream, after every check of its container (the decoder's own:
 * a bitstream that fails here fails to decode with the same message). */
LIC2CPP_API lic2cpp_status lic2cpp_get_info(lic2cpp_codec* codec, const uint8_t* data,
                                            size_t size, uint32_t* width, uint32_t* height);
/* Decodes into rgb: row y at rgb + y * stride (stride >= 3 * width); `capacity` is the
 * buffer's size in bytes, at least (height - 1) * stride + 3 * width. */
LIC2CPP_API lic2cpp_status lic2cpp_decode(lic2cpp_codec* codec, const uint8_t* data,
                                          size_t size, uint8_t* rgb, size_t stride,
                                          size_t capacity);
/* Decodes band by band into `callback` (tiled within the memory budget: a huge image never
 * needs a whole-image buffer). */
LIC2CPP_API lic2cpp_status lic2cpp_decode_rows(lic2cpp_codec* codec, const uint8_t* data,
                                               size_t size, lic2cpp_rows_callback callback,
                                               void* user);
/* How lic2cpp_decode_rows would decode a bitstream within the codec's budget (lic2cpp_decode
 * needs no more), without decoding it. LIC2CPP_MEMORY_BUDGET when even the smallest tiles
 * exceed the budget; least, whole and budget are filled then too. */
LIC2CPP_API lic2cpp_status lic2cpp_plan_decode(lic2cpp_codec* codec, const uint8_t* data,
                                               size_t size, lic2cpp_plan* plan);
/* The de-quantised latent of a bitstream, float32 (*height, *width, *channels), to be
 * released with lic2cpp_free() (for inspection; `decoder --dump-latent`). */
LIC2CPP_API lic2cpp_status lic2cpp_decode_latent(lic2cpp_codec* codec, const uint8_t* data,
                                                 size_t size, float** latent, uint32_t* height,
                                                 uint32_t* width, uint32_t* channels);

/* lic2cpp-cdef-end */

#ifdef __cplusplus
}
#endif

#endif /* LIC2CPP_H */
