// upcase IN OUT: copies IN to OUT with ASCII letters upper-cased.
// Built into upcase.wasm beside it (checked in, so the end-to-end test needs no
// compiler): clang --target=wasm32-wasi -O2 -Wl,--strip-all -o upcase.wasm upcase.c
#include <ctype.h>
#include <stdio.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: upcase IN OUT\n");
    return 2;
  }
  FILE *in = fopen(argv[1], "rb");
  if (!in) {
    perror(argv[1]);
    return 1;
  }
  FILE *out = fopen(argv[2], "wb");
  if (!out) {
    perror(argv[2]);
    return 1;
  }
  int c;
  while ((c = fgetc(in)) != EOF) fputc(toupper(c), out);
  return fclose(out) == 0 ? 0 : 1;
}
