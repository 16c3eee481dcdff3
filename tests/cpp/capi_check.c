/* capi_check: the C interface (lic2cpp.h) from C, under AddressSanitizer and
 * UndefinedBehaviorSanitizer: misuse and bad input give statuses and messages (never a
 * crash), every way of decoding gives the same pixels, and contexts used from several
 * threads at once give the same results as one (tests/test_library.py builds and runs it
 * against a codec's static library).
 *
 * Prints "case NAME: STATUS: MESSAGE" for each expected failure (the test compares the
 * messages with the programs') and "FAIL ..." for each broken expectation; exit status 1 if
 * any. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lic2cpp.h"

static int failures = 0;

#define CHECK(cond, ...)                          \
  do {                                            \
    if (!(cond)) {                                \
      printf("FAIL line %d: ", __LINE__);         \
      printf(__VA_ARGS__);                        \
      printf("\n");                               \
      ++failures;                                 \
    }                                             \
  } while (0)

enum { W = 211, H = 173 };

static void report(const char* name, lic2cpp_codec* c, lic2cpp_status s) {
  printf("case %s: %s: %s\n", name, lic2cpp_status_string(s), lic2cpp_error_message(c));
}

static void make_image(uint8_t* rgb) {
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      uint8_t* p = rgb + (y * W + x) * 3;
      p[0] = (uint8_t)(x + y);
      p[1] = (uint8_t)(128 + ((x * y) % 64));
      p[2] = (uint8_t)(255 - y);
    }
}

struct rows_state {
  uint8_t* out;
  uint32_t next;
  int stop_after;
};

static int take_rows(void* user, const uint8_t* rgb, size_t stride, uint32_t first, uint32_t rows) {
  struct rows_state* st = (struct rows_state*)user;
  if (first != st->next) return 1;
  for (uint32_t i = 0; i < rows; ++i) memcpy(st->out + (size_t)(first + i) * W * 3, rgb + i * stride, W * 3);
  st->next = first + rows;
  return st->stop_after-- == 1;
}

struct job {
  const uint8_t* bitstream;
  size_t size;
  const uint8_t* image;
  const uint8_t* pixels;
  uint64_t budget;
  int threads;
  int ok;
};

static void* worker(void* arg) {
  struct job* j = (struct job*)arg;
  lic2cpp_codec* c = NULL;
  j->ok = 0;
  if (lic2cpp_create(j->threads, &c) != LIC2CPP_OK) return NULL;
  uint8_t* out = malloc(W * H * 3);
  int ok = lic2cpp_set_max_memory(c, j->budget) == LIC2CPP_OK;
  for (int round = 0; round < 3 && ok; ++round) {
    ok = lic2cpp_decode(c, j->bitstream, j->size, out, W * 3, W * H * 3) == LIC2CPP_OK &&
         memcmp(out, j->pixels, W * H * 3) == 0;
    uint8_t* data = NULL;
    size_t size = 0;
    ok = ok && lic2cpp_encode(c, j->image, W, H, W * 3, &data, &size) == LIC2CPP_OK &&
         size == j->size && memcmp(data, j->bitstream, size) == 0;
    lic2cpp_free(data);
  }
  free(out);
  lic2cpp_destroy(c);
  j->ok = ok;
  return NULL;
}

int main(void) {
  lic2cpp_codec* c = NULL;
  lic2cpp_status s;
  CHECK(lic2cpp_api_version() == LIC2CPP_API_VERSION, "api version");
  CHECK(lic2cpp_create(0, &c) == LIC2CPP_INVALID_ARGUMENT && c == NULL, "0 threads");
  CHECK(lic2cpp_create(257, &c) == LIC2CPP_INVALID_ARGUMENT, "257 threads");
  CHECK(lic2cpp_create(1, NULL) == LIC2CPP_INVALID_ARGUMENT, "NULL codec");
  CHECK(lic2cpp_create(2, &c) == LIC2CPP_OK && c != NULL, "create");
  CHECK(strcmp(lic2cpp_error_message(c), "") == 0, "no message before a failure");
  CHECK(lic2cpp_error_message(NULL) != NULL, "message of NULL");
  CHECK(lic2cpp_set_max_memory(NULL, 0) == LIC2CPP_INVALID_ARGUMENT, "NULL codec budget");
  CHECK(strcmp(lic2cpp_status_string((lic2cpp_status)99), "unknown status") == 0, "status 99");
  /* loading the halves ahead (API version 3): idempotent, NULL refused */
  CHECK(lic2cpp_load_encoder(NULL) == LIC2CPP_INVALID_ARGUMENT, "NULL codec load_encoder");
  CHECK(lic2cpp_load_decoder(NULL) == LIC2CPP_INVALID_ARGUMENT, "NULL codec load_decoder");
  CHECK(lic2cpp_load_encoder(c) == LIC2CPP_OK && lic2cpp_load_encoder(c) == LIC2CPP_OK,
        "load_encoder");
  CHECK(lic2cpp_load_decoder(c) == LIC2CPP_OK && lic2cpp_load_decoder(c) == LIC2CPP_OK,
        "load_decoder");

  /* encoding */
  uint8_t* image = malloc(W * H * 3);
  make_image(image);
  uint8_t* data = NULL;
  size_t size = 0;
  s = lic2cpp_encode(c, NULL, W, H, W * 3, &data, &size);
  CHECK(s == LIC2CPP_INVALID_ARGUMENT, "NULL rgb");
  report("null_rgb", c, s);
  s = lic2cpp_encode(c, image, W, H, W * 3 - 1, &data, &size);
  CHECK(s == LIC2CPP_INVALID_ARGUMENT, "small stride");
  report("small_stride", c, s);
  s = lic2cpp_encode(c, image, 0, H, W * 3, &data, &size);
  CHECK(s == LIC2CPP_BAD_IMAGE, "empty image");
  report("empty_image", c, s);
  s = lic2cpp_encode(c, image, 70000, 1, 70000 * 3, &data, &size);
  CHECK(s == LIC2CPP_BAD_IMAGE, "huge image");
  report("huge_image", c, s);
  s = lic2cpp_encode(c, image, W, H, W * 3, NULL, &size);
  CHECK(s == LIC2CPP_INVALID_ARGUMENT, "NULL data");
  lic2cpp_encode_stats st;
  float* latent = NULL;
  CHECK(lic2cpp_encode_ex(c, image, W, H, W * 3, &data, &size, &st, &latent) == LIC2CPP_OK,
        "encode: %s", lic2cpp_error_message(c));
  CHECK(strcmp(lic2cpp_error_message(c), "") == 0, "success clears the message");
  CHECK(size == st.header_bytes + st.payload_bytes && st.header_bytes == 40, "stats sizes");
  CHECK(data[5] == 0, "an image within the 1.0 limits is written as bitstream 1.0");
  /* a padded copy of the image (stride 3 * W + 7) gives the same bitstream */
  uint8_t* padded = calloc((size_t)H * (W * 3 + 7), 1);
  for (int y = 0; y < H; ++y) memcpy(padded + y * (W * 3 + 7), image + y * W * 3, W * 3);
  uint8_t* data2 = NULL;
  size_t size2 = 0;
  CHECK(lic2cpp_encode(c, padded, W, H, W * 3 + 7, &data2, &size2) == LIC2CPP_OK &&
            size2 == size && memcmp(data, data2, size) == 0, "strided input");
  lic2cpp_free(data2);

  /* container checks */
  uint32_t w = 0, h = 0;
  s = lic2cpp_get_info(c, NULL, 0, &w, &h);
  CHECK(s == LIC2CPP_BAD_BITSTREAM, "empty bitstream");
  report("empty", c, s);
  s = lic2cpp_get_info(c, data, size - 1, &w, &h);
  CHECK(s == LIC2CPP_BAD_BITSTREAM, "truncated");
  report("truncated", c, s);
  uint8_t* bad = malloc(size);
  memcpy(bad, data, size);
  bad[size / 2] ^= 4;
  s = lic2cpp_get_info(c, bad, size, &w, &h);
  CHECK(s == LIC2CPP_BAD_BITSTREAM, "flipped bit");
  report("flipped", c, s);
  s = lic2cpp_get_info(c, data, size, NULL, &h);
  CHECK(s == LIC2CPP_INVALID_ARGUMENT, "NULL width");
  CHECK(lic2cpp_get_info(c, data, size, &w, &h) == LIC2CPP_OK && w == W && h == H, "info");

  /* decoding: buffer, strided buffer, rows, tiles */
  uint8_t* pixels = malloc(W * H * 3);
  CHECK(lic2cpp_decode(c, data, size, pixels, W * 3, W * H * 3) == LIC2CPP_OK, "decode: %s",
        lic2cpp_error_message(c));
  s = lic2cpp_decode(c, data, size, pixels, W * 3, W * H * 3 - 1);
  CHECK(s == LIC2CPP_BUFFER_TOO_SMALL, "small buffer");
  report("small_buffer", c, s);
  s = lic2cpp_decode(c, data, size, NULL, W * 3, W * H * 3);
  CHECK(s == LIC2CPP_INVALID_ARGUMENT, "NULL output");
  s = lic2cpp_decode(c, data, size, pixels, W * 3 - 3, W * H * 3);
  CHECK(s == LIC2CPP_INVALID_ARGUMENT, "small output stride");
  const size_t stride = W * 3 + 5;
  uint8_t* wide = malloc(stride * H);
  memset(wide, 0xAB, stride * H);
  CHECK(lic2cpp_decode(c, data, size, wide, stride, stride * (H - 1) + W * 3) == LIC2CPP_OK,
        "strided decode");
  for (int y = 0; y < H; ++y) {
    CHECK(memcmp(wide + y * stride, pixels + y * W * 3, W * 3) == 0, "strided row %d", y);
    for (size_t k = W * 3; k < stride && y + 1 < H; ++k) CHECK(wide[y * stride + k] == 0xAB, "padding written");
  }
  uint8_t* rows = malloc(W * H * 3);
  struct rows_state rs = {rows, 0, -1};
  CHECK(lic2cpp_decode_rows(c, data, size, take_rows, &rs) == LIC2CPP_OK && rs.next == H &&
            memcmp(rows, pixels, W * H * 3) == 0, "decode_rows");
  CHECK(lic2cpp_decode_rows(c, data, size, NULL, NULL) == LIC2CPP_INVALID_ARGUMENT, "NULL callback");

  lic2cpp_plan plan;
  CHECK(lic2cpp_plan_decode(c, data, size, &plan) == LIC2CPP_OK && plan.tiles_down == 1 &&
            plan.tiles_across == 1 && plan.budget == 0, "plan without a budget");
  const uint64_t least = plan.least, whole = plan.whole;
  CHECK(least > 0 && least < whole, "least %llu < whole %llu", (unsigned long long)least,
        (unsigned long long)whole);
  CHECK(lic2cpp_set_max_memory(c, 1) == LIC2CPP_OK, "budget");
  s = lic2cpp_decode(c, data, size, rows, W * 3, W * H * 3);
  CHECK(s == LIC2CPP_MEMORY_BUDGET, "budget too small");
  CHECK(lic2cpp_set_max_memory(c, least - 1) == LIC2CPP_OK, "budget");
  rs.next = 0;
  s = lic2cpp_decode_rows(c, data, size, take_rows, &rs);
  CHECK(s == LIC2CPP_MEMORY_BUDGET, "budget too small for bands");
  report("budget", c, s);
  CHECK(lic2cpp_plan_decode(c, data, size, &plan) == LIC2CPP_MEMORY_BUDGET && plan.least == least,
        "plan over budget");
  CHECK(lic2cpp_set_max_memory(c, least) == LIC2CPP_OK, "budget");
  CHECK(lic2cpp_plan_decode(c, data, size, &plan) == LIC2CPP_OK && plan.working_set <= least &&
            plan.tiles_down > 1 && plan.tiles_across > 1, "smallest tiles");
  memset(rows, 0, W * H * 3);
  rs.next = 0;
  CHECK(lic2cpp_decode_rows(c, data, size, take_rows, &rs) == LIC2CPP_OK &&
            memcmp(rows, pixels, W * H * 3) == 0, "smallest tiles decode the same pixels");
  rs.next = 0;
  rs.stop_after = 2;
  s = lic2cpp_decode_rows(c, data, size, take_rows, &rs);
  CHECK(s == LIC2CPP_ABORTED, "callback stop");
  report("aborted", c, s);
  uint8_t* data3 = NULL;
  size_t size3 = 0;
  CHECK(lic2cpp_set_max_memory(c, 0) == LIC2CPP_OK, "no budget");
  CHECK(lic2cpp_plan_encode(c, W, H, &plan) == LIC2CPP_OK && plan.tiles_down == 1, "encoder plan");
  CHECK(lic2cpp_set_max_memory(c, plan.least) == LIC2CPP_OK, "encoder budget");
  CHECK(lic2cpp_encode(c, image, W, H, W * 3, &data3, &size3) == LIC2CPP_OK && size3 == size &&
            memcmp(data3, data, size) == 0, "tiled encode gives the same bitstream");
  lic2cpp_free(data3);
  CHECK(lic2cpp_set_max_memory(c, 0) == LIC2CPP_OK, "no budget");

  /* RDOQ (API version 2): options checked, a real search under the sanitizers, its report,
   * the same bytes for any thread count, refused when the budget tiles the image */
  CHECK(lic2cpp_api_version() == 3 && LIC2CPP_API_VERSION == 3, "API version");
  CHECK(lic2cpp_default_rdoq_lambda() == 0.0, "default lambda of a plain build");
  lic2cpp_rdoq_report rr;
  CHECK(lic2cpp_get_rdoq_report(c, &rr) == LIC2CPP_OK && rr.lambda == 0 && rr.passes == 0,
        "no RDOQ report before RDOQ");
  CHECK(lic2cpp_get_rdoq_report(c, NULL) == LIC2CPP_INVALID_ARGUMENT, "NULL report");
  s = lic2cpp_set_rdoq(c, 0.0 / 0.0, -1);
  CHECK(s == LIC2CPP_INVALID_ARGUMENT, "NaN lambda");
  report("rdoq_nan", c, s);
  CHECK(lic2cpp_set_rdoq(c, 0.002, 1001) == LIC2CPP_INVALID_ARGUMENT, "too many sweeps");
  CHECK(lic2cpp_set_rdoq(NULL, 0.002, -1) == LIC2CPP_INVALID_ARGUMENT, "NULL codec");
  CHECK(lic2cpp_set_rdoq(c, 0.002, 3) == LIC2CPP_OK, "set_rdoq");
  CHECK(lic2cpp_encode(c, image, W, H, W * 3, &data3, &size3) == LIC2CPP_OK, "RDOQ encode: %s",
        lic2cpp_error_message(c));
  CHECK(lic2cpp_get_rdoq_report(c, &rr) == LIC2CPP_OK && rr.lambda == 0.002 && rr.sweeps <= 3 &&
            rr.passes > 0 && rr.bits_plain > 0 && rr.sse_plain > 0,
        "RDOQ report");
  {
    lic2cpp_codec* c3 = NULL;
    uint8_t* data4 = NULL;
    size_t size4 = 0;
    CHECK(lic2cpp_create(3, &c3) == LIC2CPP_OK && lic2cpp_set_rdoq(c3, 0.002, 3) == LIC2CPP_OK &&
              lic2cpp_encode(c3, image, W, H, W * 3, &data4, &size4) == LIC2CPP_OK &&
              size4 == size3 && memcmp(data4, data3, size3) == 0,
          "RDOQ: the same bytes with 3 threads");
    lic2cpp_free(data4);
    lic2cpp_destroy(c3);
  }
  lic2cpp_free(data3);
  data3 = NULL;
  CHECK(lic2cpp_set_max_memory(c, plan.least) == LIC2CPP_OK, "encoder budget");
  s = lic2cpp_encode(c, image, W, H, W * 3, &data3, &size3);
  CHECK(s == LIC2CPP_BAD_IMAGE && data3 == NULL, "RDOQ with tiles refused");
  report("rdoq_tiles", c, s);
  CHECK(lic2cpp_set_max_memory(c, 0) == LIC2CPP_OK && lic2cpp_set_rdoq(c, 0, -1) == LIC2CPP_OK,
        "back to plain rounding");

  float* y = NULL;
  uint32_t lh = 0, lw = 0, ch = 0;
  CHECK(lic2cpp_decode_latent(c, data, size, &y, &lh, &lw, &ch) == LIC2CPP_OK &&
            lh == st.latent_height && lw == st.latent_width && ch == st.latent_channels &&
            memcmp(y, latent, sizeof(float) * lh * lw * ch) == 0, "latent round trip");
  lic2cpp_free(y);
  lic2cpp_free(latent);

  /* contexts on several threads at once, with different budgets and thread counts */
  enum { N = 4 };
  pthread_t tid[N];
  struct job jobs[N];
  const uint64_t budgets[N] = {0, least, (least + whole) / 2, whole};
  for (int i = 0; i < N; ++i) {
    struct job j = {data, size, image, pixels, budgets[i], 1 + i % 2, 0};
    jobs[i] = j;
    CHECK(pthread_create(&tid[i], NULL, worker, &jobs[i]) == 0, "thread");
  }
  for (int i = 0; i < N; ++i) {
    pthread_join(tid[i], NULL);
    CHECK(jobs[i].ok, "thread %d (budget %llu) gave other results", i, (unsigned long long)budgets[i]);
  }

  lic2cpp_free(data);
  free(image);
  free(padded);
  free(bad);
  free(pixels);
  free(wide);
  free(rows);
  lic2cpp_destroy(c);
  lic2cpp_destroy(NULL);
  printf("%s\n", failures ? "FAILED" : "all checks passed");
  return failures ? 1 : 0;
}
