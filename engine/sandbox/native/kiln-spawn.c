/*
 * kiln-spawn: starts a slot's actions for its agent (engine/worker/launcher.ts
 * in slot mode), so that the agent, a Node process of ~45 MiB, never forks.
 * A fork copies the parent's page tables and leaves every page it writes
 * afterwards to a copy-on-write fault; from a small C process the same spawn
 * costs a fraction of that (README, "Performance notes").
 *
 * Requests come on stdin, one per action, and never anything else:
 *   u32 length (little-endian), then `length` bytes of NUL-terminated fields:
 *   token, uid, gid (-1: keep), polite (0/1), cwd, stdout path, stderr path,
 *   then four counted lists (a count field, then that many fields):
 *   argv, environment (NAME=value), write-only files (fds 4, 5, ...),
 *   cgroup.procs files to join.
 * Answers go to stdout, one line each:
 *   started TOKEN PID
 *   failed TOKEN ERRNO STEP      (nothing runs; STEP says what failed)
 *   exited TOKEN CODE SIGNAL     (CODE -1 when killed by SIGNAL, else SIGNAL 0)
 *
 * The child, before exec: a session and process group of its own, the given
 * cgroups joined (it is born in them, the agent never moves), nice 19 and its
 * autogroup's too when polite, /dev/null as stdin, the log files appended to
 * as stdout and stderr, fd 3 closed, the write-only files from fd 4, the
 * working folder, supplementary groups dropped, gid and uid set, the signal
 * mask and dispositions reset, then exec (argv[0] searched in the
 * environment's PATH when it has no slash), as Node's spawn does it.
 * When stdin ends (the agent is gone) this process exits.
 *
 * Keeping the kernel's cgroup moves fast: every move into a cgroup (the
 * child's join) takes a lock whose writer waits out an RCU grace period when
 * no move has come for about that long (v1 and v2 alike, unless mounted with
 * favordynmods): 6-16 ms after 20 ms or more without one, ~20 us otherwise,
 * measured here. Left alone, a slot's action that starts after such a lull
 * (the other slots all in long actions, or Bazel busy between them) waits it
 * out in its join. So while an action runs, this process "moves" it into the
 * cgroup it is already in whenever no move of its own came for KEEP_MOVING_MS:
 * a no-op that takes the same lock (~45 us of CPU) and keeps it fast for the
 * next start in any slot. Nothing is done while no action runs, nor once this
 * process's last start is KEEP_MOVING_FOR_MS old: a long action's own start
 * long ago makes ~10 ms at the next start no matter.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_REQUEST (16u << 20)
#define MAX_RUNNING 256
#define FIRST_WRITABLE_FD 4
/* Descriptors opened for the child go above this first, so that none lands on a target. */
#define HIGH_FD 64
/* See above: well inside the ~20 ms after which a move waits for a grace period. */
#define KEEP_MOVING_MS 10
#define KEEP_MOVING_FOR_MS 1000

struct running {
  pid_t pid;
  char token[64];
  /* The first cgroup.procs the child joined (NULL: none), and its descriptor once a keep-moving write opened it. */
  char *cgroup;
  int cgroup_fd;
};
static struct running running[MAX_RUNNING];

struct request {
  const char *token, *cwd, *out, *err;
  long uid, gid;
  int polite;
  char **argv, **env, **writable, **cgroups;
  size_t nwritable, ncgroups;
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) n = sizeof line - 1;
  for (int off = 0; off < n;) {
    ssize_t w = write(1, line + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) exit(0); /* the agent is gone */
    off += w;
  }
}

static int read_fully(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += r;
  }
  return 0;
}

/* Splits the body into fields; -1 when it is not a well-formed request. */
static int parse(char *body, uint32_t len, struct request *q) {
  char *p = body, *end = body + len;
  if (len == 0 || body[len - 1] != '\0') return -1;
  const char *fields[7];
  for (int i = 0; i < 7; i++) {
    if (p >= end) return -1;
    fields[i] = p;
    p += strlen(p) + 1;
  }
  q->token = fields[0];
  q->uid = strtol(fields[1], NULL, 10);
  q->gid = strtol(fields[2], NULL, 10);
  q->polite = fields[3][0] == '1';
  q->cwd = fields[4];
  q->out = fields[5];
  q->err = fields[6];
  if (strlen(q->token) == 0 || strlen(q->token) >= sizeof running[0].token || strpbrk(q->token, " \n")) return -1;
  char ***lists[4] = {&q->argv, &q->env, &q->writable, &q->cgroups};
  size_t counts[4];
  for (int l = 0; l < 4; l++) {
    if (p >= end) return -1;
    char *stop;
    unsigned long n = strtoul(p, &stop, 10);
    if (*stop != '\0' || n > len) return -1;
    p += strlen(p) + 1;
    char **list = calloc(n + 1, sizeof *list);
    if (!list) return -1;
    for (unsigned long i = 0; i < n; i++) {
      if (p >= end) return -1;
      list[i] = p;
      p += strlen(p) + 1;
    }
    *lists[l] = list;
    counts[l] = n;
  }
  q->nwritable = counts[2];
  q->ncgroups = counts[3];
  return counts[0] == 0 ? -1 : 0;
}

/*
 * The child is made with vfork: it shares this process's memory until its exec,
 * with no page tables copied (a fork cost ~0.8 ms of CPU per action here, mostly
 * that copy). Until then it only makes system calls, and on failure leaves errno
 * and the failed step here for the parent, which resumes once the child has
 * exec'd or ended.
 */
static volatile int child_errno, child_step;

/* When this process last made or asked for a cgroup move (a child's join, or keep_moving), and last started an action. */
static long long last_move, last_start;

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

__attribute__((noreturn)) static void fail(int step) {
  child_errno = errno;
  child_step = step;
  _exit(127);
}

enum { STEP_SETSID = 1, STEP_CGROUP, STEP_STDIN, STEP_STDOUT, STEP_STDERR, STEP_WRITABLE, STEP_DUP, STEP_CHDIR, STEP_SETGID, STEP_SETUID, STEP_EXEC };
static const char *step_names[] = {"", "setsid", "cgroup", "stdin", "stdout", "stderr", "writable", "dup", "chdir", "setgid", "setuid", "exec"};

static int open_high(const char *path, int flags, int step) {
  int fd = open(path, flags | O_CLOEXEC, 0666);
  if (fd < 0) fail(step);
  int high = fcntl(fd, F_DUPFD_CLOEXEC, HIGH_FD);
  if (high < 0) fail(STEP_DUP);
  close(fd);
  return high;
}

__attribute__((noreturn)) static void exec_searching(char **argv, char **env) {
  const char *file = argv[0];
  if (strchr(file, '/')) {
    execve(file, argv, env);
    fail(STEP_EXEC);
  }
  const char *path = "/usr/local/bin:/usr/bin:/bin";
  for (char **e = env; *e; e++)
    if (strncmp(*e, "PATH=", 5) == 0) path = *e + 5;
  int seen_eacces = 0;
  char full[4096];
  for (const char *dir = path;;) {
    const char *colon = strchr(dir, ':');
    size_t n = colon ? (size_t)(colon - dir) : strlen(dir);
    if (n == 0) n = 1, dir = "."; /* an empty entry is the working folder */
    if (n + 1 + strlen(file) < sizeof full) {
      memcpy(full, dir, n);
      full[n] = '/';
      strcpy(full + n + 1, file);
      execve(full, argv, env);
      if (errno == EACCES) seen_eacces = 1;
      else if (errno != ENOENT && errno != ENOTDIR) fail(STEP_EXEC);
    }
    if (!colon) break;
    dir = colon + 1;
  }
  errno = seen_eacces ? EACCES : ENOENT;
  fail(STEP_EXEC);
}

__attribute__((noreturn)) static void child(const struct request *q) {
  sigset_t none;
  sigemptyset(&none);
  /* The one disposition this process changed; the rest came default from the agent's spawn of it. */
  signal(SIGPIPE, SIG_DFL);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (setsid() < 0) fail(STEP_SETSID);
  for (size_t i = 0; i < q->ncgroups; i++) {
    int fd = open(q->cgroups[i], O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1) fail(STEP_CGROUP);
    close(fd);
  }
  if (q->polite) {
    setpriority(PRIO_PROCESS, 0, 19);
    int fd = open("/proc/self/autogroup", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      ssize_t ignored = write(fd, "19", 2);
      (void)ignored;
      close(fd);
    }
  }
  int in = open_high("/dev/null", O_RDONLY, STEP_STDIN);
  int out = open_high(q->out, O_WRONLY | O_APPEND | O_CREAT, STEP_STDOUT);
  int err = open_high(q->err, O_WRONLY | O_APPEND | O_CREAT, STEP_STDERR);
  int writable[64];
  if (q->nwritable > 64) {
    errno = EMFILE;
    fail(STEP_WRITABLE);
  }
  for (size_t i = 0; i < q->nwritable; i++) writable[i] = open_high(q->writable[i], O_WRONLY, STEP_WRITABLE);
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) fail(STEP_DUP);
  close(3); /* the marker's place: no marker in a slot */
  for (size_t i = 0; i < q->nwritable; i++)
    if (dup2(writable[i], FIRST_WRITABLE_FD + (int)i) < 0) fail(STEP_DUP);
  if (chdir(q->cwd) < 0) fail(STEP_CHDIR);
  if (q->uid >= 0 || q->gid >= 0) {
    int ignored = setgroups(0, NULL);
    (void)ignored;
  }
  if (q->gid >= 0 && setgid((gid_t)q->gid) < 0) fail(STEP_SETGID);
  if (q->uid >= 0 && setuid((uid_t)q->uid) < 0) fail(STEP_SETUID);
  exec_searching(q->argv, q->env);
}

__attribute__((noinline)) static int free_slot(void) {
  for (int i = 0; i < MAX_RUNNING; i++)
    if (running[i].pid == 0) return i;
  return -1;
}

static void start(const struct request *q) {
  volatile int slot = free_slot();
  if (slot < 0) {
    say("failed %s %d fork\n", q->token, EAGAIN);
    return;
  }
  child_errno = 0;
  child_step = 0;
  pid_t pid = vfork();
  if (pid < 0) {
    say("failed %s %d fork\n", q->token, errno);
    return;
  }
  if (pid == 0) child(q);
  if (child_step != 0) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    int step = child_step <= STEP_EXEC ? child_step : STEP_EXEC;
    say("failed %s %d %s\n", q->token, child_errno, step_names[step]);
    return;
  }
  running[slot].pid = pid;
  strcpy(running[slot].token, q->token);
  running[slot].cgroup = q->ncgroups ? strdup(q->cgroups[0]) : NULL;
  running[slot].cgroup_fd = -1;
  last_move = last_start = now_ms();
  say("started %s %d\n", q->token, (int)pid);
}

static void forget(struct running *r) {
  if (r->cgroup_fd >= 0) close(r->cgroup_fd);
  free(r->cgroup);
  r->cgroup = NULL;
  r->cgroup_fd = -1;
  r->pid = 0;
}

/*
 * A no-op move of one running action into its own first cgroup, when no move
 * came for KEEP_MOVING_MS (see the top). Returns how long poll may sleep until
 * the next one is due, or -1 when none will be (no running action has a
 * cgroup, or the last start is too old).
 */
static int keep_moving(void) {
  struct running *r = NULL;
  for (int i = 0; i < MAX_RUNNING && !r; i++)
    if (running[i].pid != 0 && running[i].cgroup) r = &running[i];
  long long due = last_move + KEEP_MOVING_MS, now = now_ms();
  if (!r || now - last_start > KEEP_MOVING_FOR_MS) return -1;
  if (now < due) return (int)(due - now);
  if (r->cgroup_fd < 0) r->cgroup_fd = open(r->cgroup, O_WRONLY | O_CLOEXEC);
  if (r->cgroup_fd >= 0) {
    char pid[16];
    int n = snprintf(pid, sizeof pid, "%d", (int)r->pid);
    /* Refused once the action has ended and is not yet reaped (or its cgroup is gone): nothing to do then. */
    ssize_t ignored = write(r->cgroup_fd, pid, (size_t)n);
    (void)ignored;
  }
  last_move = now;
  return KEEP_MOVING_MS;
}

static void reap(void) {
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (int i = 0; i < MAX_RUNNING; i++) {
      if (running[i].pid != pid) continue;
      if (WIFSIGNALED(status)) say("exited %s -1 %d\n", running[i].token, WTERMSIG(status));
      else say("exited %s %d 0\n", running[i].token, WEXITSTATUS(status));
      forget(&running[i]);
      break;
    }
  }
}

int main(void) {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  signal(SIGPIPE, SIG_IGN);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    perror("kiln-spawn: signalfd");
    return 1;
  }
  fcntl(0, F_SETFD, FD_CLOEXEC);
  fcntl(1, F_SETFD, FD_CLOEXEC);
  say("ready\n");
  for (;;) {
    struct pollfd fds[2] = {{.fd = 0, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
    if (poll(fds, 2, keep_moving()) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (fds[1].revents & POLLIN) {
      struct signalfd_siginfo info;
      while (read(sfd, &info, sizeof info) > 0) {}
      reap();
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      uint32_t len;
      if (read_fully(0, &len, sizeof len) < 0) return 0; /* the agent is gone */
      if (len > MAX_REQUEST) {
        fprintf(stderr, "kiln-spawn: a request of %u bytes is over the limit\n", len);
        return 2;
      }
      char *body = malloc(len ? len : 1);
      if (!body || read_fully(0, body, len) < 0) return 0;
      struct request q = {0};
      if (parse(body, len, &q) < 0) {
        fprintf(stderr, "kiln-spawn: a malformed request\n");
        return 2;
      }
      start(&q);
      free(q.argv);
      free(q.env);
      free(q.writable);
      free(q.cgroups);
      free(body);
    }
  }
}
