/* consumer decode IN.bin OUT.ppm [MAX_MEMORY_BYTES] | consumer encode IN.ppm OUT.bin
 * A small C program using the codec library (lic2cpp.h), built by CMake in the tests. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lic2cpp.h"

static uint8_t* read_all(const char* path, size_t* size) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t* d = malloc((size_t)(n > 0 ? n : 0) + 1);
  *size = fread(d, 1, (size_t)(n > 0 ? n : 0), f);
  d[*size] = 0; /* sscanf reads the PPM header as a string */
  fclose(f);
  return d;
}

static int fail(lic2cpp_codec* c, const char* what) {
  fprintf(stderr, "consumer: %s: %s\n", what, lic2cpp_error_message(c));
  return 1;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: consumer decode IN.bin OUT.ppm [MAX_MEMORY] | encode IN.ppm OUT.bin\n");
    return 2;
  }
  lic2cpp_codec* c = NULL;
  if (lic2cpp_create(1, &c) != LIC2CPP_OK) return 1;
  size_t size = 0;
  uint8_t* in = read_all(argv[2], &size);
  if (!in) return fail(c, "cannot read the input");
  FILE* out = fopen(argv[3], "wb");
  if (!out) return fail(c, "cannot write the output");
  if (strcmp(argv[1], "decode") == 0) {
    if (argc > 4 && lic2cpp_set_max_memory(c, strtoull(argv[4], NULL, 10)) != LIC2CPP_OK)
      return fail(c, "budget");
    uint32_t w, h;
    if (lic2cpp_get_info(c, in, size, &w, &h) != LIC2CPP_OK) return fail(c, "info");
    uint8_t* rgb = malloc((size_t)w * h * 3);
    if (lic2cpp_decode(c, in, size, rgb, (size_t)w * 3, (size_t)w * h * 3) != LIC2CPP_OK)
      return fail(c, "decode");
    fprintf(out, "P6\n%u %u\n255\n", w, h);
    fwrite(rgb, 1, (size_t)w * h * 3, out);
    free(rgb);
  } else {
    unsigned w = 0, h = 0, maxval = 0;
    int header = 0;
    if (sscanf((const char*)in, "P6 %u %u %u%n", &w, &h, &maxval, &header) != 3 || maxval != 255)
      return fail(c, "not a P6 PPM");
    uint8_t* data = NULL;
    size_t n = 0;
    if (lic2cpp_encode(c, in + header + 1, w, h, (size_t)w * 3, &data, &n) != LIC2CPP_OK)
      return fail(c, "encode");
    fwrite(data, 1, n, out);
    lic2cpp_free(data);
  }
  fclose(out);
  free(in);
  lic2cpp_destroy(c);
  return 0;
}
