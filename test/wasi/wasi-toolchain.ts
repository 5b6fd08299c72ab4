// Builds the small C programs the WASI tests run, with Debian's clang, lld,
// wasi-libc and libclang-rt-14-dev-wasm32 (installed by .ci/run). Where they
// are missing, `toolchain.reason` says so and the tests skip with it.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'kiln-wasi-build-'));
/** Removes the compiled programs (call from afterAll; the exit hook is a fallback for when that does not run). */
export function removeWasiBuilds(): void {
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', removeWasiBuilds);

/** Compiles C source to a wasm32-wasi command module; returns the .wasm path. */
export function compileWasi(name: string, source: string): string {
  mkdirSync(dir, { recursive: true });
  const src = join(dir, `${name}.c`);
  const out = join(dir, `${name}.wasm`);
  writeFileSync(src, source);
  execFileSync('clang', ['--target=wasm32-wasi', '-O1', '-o', out, src], { stdio: 'pipe' });
  return out;
}

function probe(): { ok: boolean; reason: string } {
  try {
    compileWasi('probe', 'int main(void) { return 0; }\n');
    return { ok: true, reason: '' };
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    const why = e.code === 'ENOENT' ? 'clang is not installed' : (e.stderr?.toString().trim().split('\n').pop() ?? e.message);
    return { ok: false, reason: `no wasm32-wasi C toolchain (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32): ${why}` };
  }
}

export const toolchain = probe();

/** The C programs the issue lists, and a few that fail in the ways a user must be told about. */
export const PROGRAMS = {
  copy: `#include <stdio.h>
int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: copy IN OUT\\n"); return 2; }
  FILE *in = fopen(argv[1], "rb"); if (!in) { perror(argv[1]); return 1; }
  FILE *out = fopen(argv[2], "wb"); if (!out) { perror(argv[2]); return 1; }
  char buf[4096]; size_t n;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
  return fclose(out) == 0 ? 0 : 1;
}
`,
  talk: `#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  printf("out:");
  for (int i = 1; i < argc; i++) printf(" %s", argv[i]);
  const char *g = getenv("GREETING");
  printf("\\nGREETING=%s\\n", g ? g : "(unset)");
  fprintf(stderr, "to stderr\\n");
  return argc;
}
`,
  // Writes a line, then waits for a file named "go" to appear: the test sees the line while it still runs.
  waitForGo: `#include <stdio.h>
int main(void) {
  printf("started\\n"); fflush(stdout);
  for (;;) { FILE *f = fopen("go", "r"); if (f) { fclose(f); break; } }
  printf("done\\n");
  return 0;
}
`,
  // Tries each path, then a symlink it makes to each path.
  escape: `#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int reached = 0;
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "r");
    printf("%s: %s\\n", argv[i], f ? "OPENED" : "refused");
    if (f) { reached = 1; fclose(f); }
    char link[16];
    snprintf(link, sizeof link, "link%d", i);
    symlink(argv[i], link);
    f = fopen(link, "r");
    printf("%s -> %s: %s\\n", link, argv[i], f ? "OPENED" : "refused");
    if (f) { reached = 1; fclose(f); }
  }
  // Preview 1 cannot create a socket; none may be inherited either (and poking the fds it has must not crash Kiln).
  char byte = 0;
  for (int fd = 0; fd < 16; fd++) {
    int s = accept(fd, 0, 0);
    if (s >= 0) { printf("socket on fd %d: OPENED\\n", fd); reached = 1; }
    if (recv(fd, &byte, 1, 0) >= 0 || send(fd, &byte, 1, 0) >= 0 || shutdown(fd, SHUT_RDWR) == 0) {
      printf("socket call on fd %d: WORKED\\n", fd); reached = 1;
    }
  }
  printf("sockets: refused\\n");
  return reached;
}
`,
  loop: `int main(void) {
  volatile unsigned long n = 0;
  for (;;) n++;
}
`,
  // Allocates 1 MiB blocks, touching and keeping each (so the compiler cannot drop them), until malloc fails; prints how far it got.
  alloc: `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static char *kept[4096];
int main(void) {
  for (int mib = 0; mib < 4096; mib++) {
    char *p = kept[mib] = malloc(1 << 20);
    if (!p) { printf("%d\\n", mib); fprintf(stderr, "out of memory after %d MiB\\n", mib); return 12; }
    memset(p, 1, 1 << 20);
  }
  printf("4096\\n");
  return 0;
}
`,
  trap: `int main(void) { __builtin_trap(); }
`,
  foreignImport: `__attribute__((import_module("env"), import_name("sock_open"))) int sock_open(int);
int main(void) { return sock_open(1); }
`,
  snapshot0: `__attribute__((import_module("wasi_unstable"), import_name("proc_exit"))) void old_exit(int);
int main(void) { old_exit(0); return 0; }
`,
};
