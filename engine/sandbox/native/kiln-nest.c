/*
 * kiln-nest: starts one action inside a non-root slot's sandbox
 * (engine/sandbox/slot-sandboxes.ts) in namespaces of its own, so that it
 * cannot reach the slot's agent nor anything beside its exec root:
 *   a user namespace (the same uid: what owns the others, unprivileged),
 *   a mount namespace in which the given folders are covered by an empty
 *     tmpfs, the exec root bound back at its own path, and a /proc of its own,
 *   a PID namespace (the agent is not in it; when its PID 1 ends, the kernel
 *     kills everything left in it),
 *   an IPC namespace (System V objects go with it).
 * Node cannot make namespaces for a child, and util-linux's unshare costs
 * one more dynamically linked exec and a shell as PID 1 (README, "Cost").
 *
 *   kiln-nest [--nice N] [--nproc N] [--memory BYTES] [--cgroup PROCS]... [--hide DIR]... --keep EXECROOT -- ARGV...
 *
 * --cgroup PROCS: a cgroup.procs file (one per hierarchy) this process joins
 * before anything else, so the init and the action are born in the action's
 * cgroups; a cgroup namespace is then made there too, so the action sees its
 * cgroup as its root, and (cgroup v2) the kernel refuses to move it above it.
 * Its only way to cgroupfs was the agent's folder, which is covered.
 *
 * --nproc N: the action may have N processes and threads at once (its fork
 * fails with EAGAIN beyond). Set as RLIMIT_NPROC once inside the new user
 * namespace, where the kernel (5.14+ ucounts) counts only that namespace's
 * tasks of the uid: the desk user's other processes and other actions do not
 * count, and it cannot be raised (no CAP_SYS_RESOURCE in the first namespace).
 * Set before the namespace, it would count every process of the user.
 *
 * --memory BYTES: where no cgroup limits the action's memory (a desk user's
 * Kiln on cgroup v1, or v2 without a delegated subtree), P adds up its
 * processes' resident anonymous memory every WATCH_MS and, over BYTES, writes
 * a line to the action's stderr and kills everything in the namespace. A
 * watch, not a kernel limit: between two looks an action can go over by what
 * it allocates in WATCH_MS, and page cache and tmpfs files are not counted.
 * The action's oom_score_adj is raised to 1000 either way, so that if memory
 * runs out first the kernel's OOM killer takes an action, not Kiln.
 *
 * Processes: this one (H, in the slot's PID namespace, the agent's child and
 * process-group leader) -> P (PID 1 of the new namespace: mounts /proc, reaps)
 * -> the action (a child of P, so it is not PID 1 and its own signals act as
 * outside). H ends as the action did: the same exit code, or the same signal.
 * P shares H's memory and the action is vfork'd: a fork that copies page
 * tables and then takes copy-on-write faults cost ~1.2 ms of CPU each here,
 * more than the four namespaces together (README, "Performance notes").
 * Signals the agent sends the group (TERM, INT, ...) reach the action; H and
 * P ignore them, so a trapping action goes on as outside; SIGKILL ends all.
 * The action holds no capability: it is exec'd as a non-zero uid, and P and
 * H drop theirs before they wait.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_HIDE 16
#define MAX_CGROUPS 8
#define WATCH_MS 20

static void die(const char *what, const char *arg) {
  /* 125: kiln-nest itself failed (the line is in the action's stderr). */
  fprintf(stderr, "kiln-nest: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", strerror(errno));
  _exit(125);
}

static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) die("cannot write", path);
  close(fd);
}

static void drop_caps(void) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  memset(d, 0, sizeof d);
  if (syscall(SYS_capset, &h, d) != 0) die("cannot drop capabilities", NULL);
}

static void mkdirs(char *path) {
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(path, 0755) != 0 && errno != EEXIST) die("cannot make", path);
    *p = '/';
  }
  if (mkdir(path, 0755) != 0 && errno != EEXIST) die("cannot make", path);
}

/* The signals the agent sends the whole group reach the action itself: H only outlives them. */
static void ignore_group_signals(int on) {
  int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) signal(sigs[i], on ? SIG_IGN : SIG_DFL);
}

/* Ends this process the way `status` says its child ended. */
static void end_like(int status) {
  if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
  int sig = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none); /* the action's core, if any, was its own */
  signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, NULL);
  raise(sig);
  _exit(128 + sig);
}

struct init_args {
  char **action;
  /* --memory, 0 for none. */
  unsigned long long memory;
  /* The action's wait status, written by P before it exits (P and H share memory). */
  volatile int status;
};

/* Resident anonymous bytes of every process in this PID namespace (P's own is a few pages). */
static unsigned long long namespace_memory(void) {
  static long page;
  if (!page) page = sysconf(_SC_PAGESIZE);
  unsigned long long total = 0;
  DIR *proc = opendir("/proc");
  if (!proc) return 0;
  struct dirent *e;
  while ((e = readdir(proc))) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    char path[300], buf[128];
    snprintf(path, sizeof path, "/proc/%s/statm", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue; /* ended since readdir */
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) continue;
    buf[n] = 0;
    unsigned long long size, resident, shared;
    /* resident - shared: the anonymous pages (RssAnon), not the mapped files every process shares. */
    if (sscanf(buf, "%llu %llu %llu", &size, &resident, &shared) == 3 && resident > shared) total += (resident - shared) * page;
  }
  closedir(proc);
  return total;
}

static void write_all(int fd, const char *text) {
  ssize_t w = write(fd, text, strlen(text));
  (void)w;
}

/* "64 MiB", as the engine's own line says a limit. */
static void format_bytes(unsigned long long n, char *out, size_t size) {
  const char *units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  double v = (double)n;
  while (v >= 1024 && u < 4) { v /= 1024; u++; }
  if (v == (double)(unsigned long long)v) snprintf(out, size, "%llu %s", (unsigned long long)v, units[u]);
  else snprintf(out, size, "%.1f %s", v, units[u]);
}

/* P's end: H reads the action's wait status from the memory they share. */
static void end_init(struct init_args *a, int status) {
  a->status = status;
  _exit(0); /* the kernel takes everything left in the namespace */
}

/* P: PID 1 of the action's namespace. Mounts its /proc, starts the action, reaps until the action ends. */
static int run_init(void *arg) {
  struct init_args *a = arg;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) die("cannot mount", "/proc");
  /* Inherited by the action and all it starts: the kernel's first choice when memory runs out. */
  int adj = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (adj >= 0) {
    write_all(adj, "1000");
    close(adj);
  }
  /* Blocked before the action exists, so its end always wakes the watch below (the action unblocks it). */
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  if (a->memory) sigprocmask(SIG_BLOCK, &chld, NULL);
  /* vfork: the action's exec replaces a process that copied no page. */
  pid_t child = vfork();
  if (child < 0) die("cannot start the action", NULL);
  if (child == 0) {
    ignore_group_signals(0);
    sigprocmask(SIG_UNBLOCK, &chld, NULL);
    execvp(a->action[0], a->action);
    /* As a shell says it, with write(2) only: this child shares P's memory until it execs. */
    int err = errno;
    const char *parts[] = {"kiln-nest: ", a->action[0], ": ", strerror(err), "\n"};
    for (size_t k = 0; k < sizeof parts / sizeof *parts; k++) write_all(2, parts[k]);
    _exit(err == ENOENT ? 127 : 126);
  }
  drop_caps();
  int over = 0;
  for (;;) {
    int status;
    pid_t got;
    if (a->memory && !over) {
      /* Wakes at a child's end or after WATCH_MS, whichever comes first; reaps every child that ended. */
      struct timespec tick = {0, WATCH_MS * 1000000L};
      sigtimedwait(&chld, NULL, &tick);
      while ((got = waitpid(-1, &status, WNOHANG)) > 0) {
        if (got == child) end_init(a, status);
      }
      if (got < 0 && errno != EINTR) end_init(a, 125 << 8);
      if (namespace_memory() > a->memory) {
        char limit[32];
        format_bytes(a->memory, limit, sizeof limit);
        const char *parts[] = {"kiln: the action went over its memory limit of ", limit, " and Kiln killed it; ask for more with the platform property memory (e.g. memory=4GiB)\n"};
        for (size_t k = 0; k < sizeof parts / sizeof *parts; k++) write_all(2, parts[k]);
        over = 1;
        kill(-1, SIGKILL); /* every process of the namespace but P */
      }
      continue;
    }
    got = wait(&status);
    if (got < 0 && errno == EINTR) continue;
    if (got == child || got < 0) end_init(a, got < 0 ? 125 << 8 : status);
  }
}

int main(int argc, char **argv) {
  const char *hide[MAX_HIDE];
  const char *cgroups[MAX_CGROUPS];
  int ncgroups = 0;
  int nhide = 0, nice_to = 0, set_nice = 0;
  long nproc = 0;
  unsigned long long memory = 0;
  const char *keep = NULL;
  int i = 1;
  for (; i < argc; i++) {
    if (!strcmp(argv[i], "--") ) { i++; break; }
    if (i + 1 >= argc) { fprintf(stderr, "kiln-nest: %s needs a value\n", argv[i]); return 125; }
    if (!strcmp(argv[i], "--hide")) {
      /* Refused, never dropped: a folder left uncovered would be in the action's sight. */
      if (nhide == MAX_HIDE) { fprintf(stderr, "kiln-nest: more than %d --hide folders\n", MAX_HIDE); return 125; }
      hide[nhide++] = argv[++i];
    }
    else if (!strcmp(argv[i], "--cgroup")) {
      /* Refused, never dropped: an action outside one of its cgroups would escape that limit. */
      if (ncgroups == MAX_CGROUPS) { fprintf(stderr, "kiln-nest: more than %d --cgroup files\n", MAX_CGROUPS); return 125; }
      cgroups[ncgroups++] = argv[++i];
    }
    else if (!strcmp(argv[i], "--keep")) keep = argv[++i];
    else if (!strcmp(argv[i], "--nice")) { nice_to = atoi(argv[++i]); set_nice = 1; }
    else if (!strcmp(argv[i], "--nproc")) {
      char *end;
      nproc = strtol(argv[++i], &end, 10);
      if (*end || nproc < 1 || nproc > (1L << 22)) { fprintf(stderr, "kiln-nest: --nproc %s is not a number of processes\n", argv[i]); return 125; }
    }
    else if (!strcmp(argv[i], "--memory")) {
      char *end;
      memory = strtoull(argv[++i], &end, 10);
      if (*end || argv[i][0] == '-' || memory < 1024 * 1024) { fprintf(stderr, "kiln-nest: --memory %s is not a number of bytes (1 MiB or more)\n", argv[i]); return 125; }
    }
    else { fprintf(stderr, "kiln-nest: unknown option %s\n", argv[i]); return 125; }
  }
  if (!keep || i >= argc || keep[0] != '/') { fprintf(stderr, "kiln-nest: usage: kiln-nest [--nice N] [--nproc N] [--memory BYTES] [--cgroup PROCS]... [--hide DIR]... --keep EXECROOT -- ARGV...\n"); return 125; }
  char **action = argv + i;
  if (set_nice) setpriority(PRIO_PROCESS, 0, nice_to);

  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) die("cannot read the working folder", NULL);
  uid_t uid = geteuid();
  gid_t gid = getegid();
  /* "0" is the writer itself: joined before the namespaces, so every process after this is born inside. */
  for (int c = 0; c < ncgroups; c++) {
    int fd = open(cgroups[c], O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1) die("cannot join the cgroup", cgroups[c]);
    close(fd);
  }
  if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | (ncgroups ? CLONE_NEWCGROUP : 0)) != 0) die("cannot make namespaces", NULL);
  char map[64];
  write_file("/proc/self/setgroups", "deny");
  snprintf(map, sizeof map, "%u %u 1\n", uid, uid);
  write_file("/proc/self/uid_map", map);
  snprintf(map, sizeof map, "%u %u 1\n", gid, gid);
  write_file("/proc/self/gid_map", map);
  if (nproc) {
    /* In the new user namespace (see --nproc above); this process and P count as two of its tasks. */
    struct rlimit r = {(rlim_t)nproc + 2, (rlim_t)nproc + 2};
    if (setrlimit(RLIMIT_NPROC, &r) != 0) die("cannot limit the action's processes", NULL);
  }

  /* Nothing mounted here goes back to the slot. */
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) die("cannot make the mounts private", NULL);
  /* Opened in the new mount namespace (a bind takes only a mount of the caller's), before it is covered. */
  int keep_fd = open(keep, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (keep_fd < 0) die("cannot open", keep);
  for (int h = 0; h < nhide; h++) {
    if (mount("tmpfs", hide[h], "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k") != 0) die("cannot hide", hide[h]);
  }
  char keep_path[PATH_MAX];
  snprintf(keep_path, sizeof keep_path, "%s", keep);
  mkdirs(keep_path);
  char from[64];
  snprintf(from, sizeof from, "/proc/self/fd/%d", keep_fd);
  if (mount(from, keep, NULL, MS_BIND | MS_REC, NULL) != 0) die("cannot bind", keep);
  close(keep_fd);
  /* Through the new mounts: the old working folder sits in the covered tree. */
  if (chdir(cwd) != 0) die("cannot enter", cwd);

  ignore_group_signals(1);
  /* P shares H's memory (no page copied: each copy-on-write fault costs on a VM), on a stack of its own. */
  static char stack[64 * 1024] __attribute__((aligned(16)));
  struct init_args args = {action, memory, 125 << 8};
  pid_t init = clone(run_init, stack + sizeof stack, CLONE_VM | SIGCHLD, &args);
  if (init < 0) die("cannot start the namespace's init", NULL);
  drop_caps();
  int pstatus;
  while (waitpid(init, &pstatus, 0) < 0) {
    if (errno != EINTR) die("cannot wait", NULL);
  }
  /* P killed from outside (the agent's SIGKILL) ends H the same way. */
  end_like(WIFEXITED(pstatus) && WEXITSTATUS(pstatus) == 0 ? args.status : pstatus);
  return 0;
}
