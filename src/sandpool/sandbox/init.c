/* sandpool-init: a sandbox's PID 1, and the helper its file operations (and runc execs) use.
 *
 * Built static (no libc, shell or anything else needed from the image) and bind-mounted
 * read-only at /.sandpool/init. Modes:
 *   init                 PID 1: block every signal, reap every child, exit on SIGTERM/SIGINT.
 *   serve                PID 1 of a runc sandbox, like init, and fd 0 is a socket to its owner
 *                        (sandbox.control). Requests: "SP" kind "1" u32 length, SCM_RIGHTS
 *                        fds, payload; commands "cwd\0argc\0argv...\0env...\0" run as
 *                        `exec` runs them. R [stdin stdout stderr] (warm one-shot run): when
 *                        the command ends every other process is SIGKILLed and reaped,
 *                        "X <wait status>\n" is sent and the init exits. K: claimed as a
 *                        sandbox. E [stdin stdout stderr status]: an exec; "P <pid>\n" then
 *                        "X <wait status>\n" on its status fd. G "<pid>\0": SIGKILL that
 *                        group. End of file: a warm (unclaimed) one exits; a sandbox's init
 *                        stops listening and lives on.
 *   exec DIR ARGV...     chdir(DIR) (126 if it cannot), setsid() (the exec leads its own process
 *                        group, so a timeout or kill reaches its children too), then execvp;
 *                        127 not found, 126 not runnable.
 *   stub                 gVisor's pre-started exec (sandbox.exec_stub): reads exactly one
 *                        request from stdin, u32 length then "cwd\0argc\0argv...\0env...\0"
 *                        (env entries are set on top of its own, as `runsc exec --env`
 *                        does), writes "R" on stdout (taken), then runs it as `exec` does,
 *                        in this process (no fork: runsc exec's status is the command's);
 *                        what follows on stdin is the command's. End of file first: exit 0.
 *   killpg PGID          SIGKILL a process group (gVisor: the host cannot signal inside).
 *   put PATH MODE        stdin -> PATH (created/truncated, MODE octal).
 *   get PATH             PATH -> stdout (a regular file only).
 *   stat PATH            one entry line for PATH (lstat).
 *   ls PATH              one entry line per directory entry.
 *   mkdir PATH PARENTS   mkdir (PARENTS=1: like mkdir -p).
 *   rm PATH RECURSIVE    unlink/rmdir (RECURSIVE=1: the whole tree, never following symlinks).
 *   mv SRC DST           rename.
 * Entry lines: "<type> <mode octal> <size> <mtime ns> <name>\0" (type f d l o).
 * Errors: "sandpool-init: <errno> <message>" on stderr, exit 1 (file ops).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <stdint.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int fail(const char *what) {
    int err = errno;
    fprintf(stderr, "sandpool-init: %d %s: %s\n", err, what, strerror(err));
    return 1;
}

static int run_init(void) {
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        int sig = sigwaitinfo(&all, NULL);
        if (sig == SIGTERM || sig == SIGINT) return 0;
        while (waitpid(-1, NULL, WNOHANG) > 0) {}
    }
}

/* SIGKILL the process group an exec leads; a kill that comes before the exec's setsid()
 * (right after its start) finds no such group yet: the exec itself is killed then, which
 * has made no process of its own before that setsid. */
static int kill_group(pid_t pid) {
    if (kill(-pid, SIGKILL) == 0 || errno != ESRCH) return 0;
    return kill(pid, SIGKILL);
}

static int run_exec(const char *dir, char **argv) {
    if (chdir(dir) < 0) {
        fprintf(stderr, "sandpool: cannot enter the working directory %s: %s\n", dir,
                strerror(errno));
        return 126;
    }
    setsid();
    execvp(argv[0], argv);
    int err = errno;
    fprintf(stderr, "sandpool: %s: %s\n", argv[0], strerror(err));
    return (err == ENOENT || err == ENOTDIR) ? 127 : 126;
}

#define MAX_REQUEST (8 << 20)

static int read_full(int fd, char *buf, size_t n) {
    for (size_t done = 0; done < n;) {
        ssize_t r = read(fd, buf + done, n - done);
        if (r == 0) return -1;
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        done += (size_t)r;
    }
    return 0;
}

/* The request's kind ('R' run, 'E' exec, 'G' killpg, 'K' keep; -1: end of file or a bad
 * request), its payload's length and the fds that came with it. */
static int receive(int ctl, int fds[4], int *nfds, uint32_t *length) {
    char head[8];
    union { struct cmsghdr h; char buf[CMSG_SPACE(4 * sizeof(int))]; } control;
    struct iovec iov = {head, sizeof head};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ssize_t n;
    do n = recvmsg(ctl, &msg, MSG_WAITALL | MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
    *nfds = 0;
    struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL;
    if (c && c->cmsg_type == SCM_RIGHTS && c->cmsg_len <= CMSG_LEN(4 * sizeof(int))) {
        *nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        memcpy(fds, CMSG_DATA(c), (size_t)*nfds * sizeof(int));
    }
    if (n != (ssize_t)sizeof head || memcmp(head, "SP", 2) || head[3] != '1') return -1;
    memcpy(length, head + 4, 4);
    int wanted = head[2] == 'R' ? 3 : head[2] == 'E' ? 4 : 0;
    if (!strchr("REGK", head[2]) || *nfds != wanted || *length > MAX_REQUEST) return -1;
    return head[2];
}

/* Split "cwd\0argc\0argv...\0env...\0" into its parts (NULL-terminated vectors). */
static int parse(char *buf, uint32_t length, char **cwd, char ***argv, char ***envp) {
    size_t count = 0;
    for (uint32_t i = 0; i < length; i++) count += buf[i] == '\0';
    if (length == 0 || buf[length - 1] != '\0' || count < 3) return -1;
    char **fields = calloc(count + 2, sizeof(char *));
    if (!fields) return -1;
    char *p = buf;
    for (size_t i = 0; i < count; i++, p += strlen(p) + 1) fields[i] = p;
    long argc = strtol(fields[1], NULL, 10);
    if (argc < 1 || (size_t)argc > count - 2) return -1;
    *cwd = fields[0];
    *argv = fields + 2;
    memmove(fields + 2 + argc + 1, fields + 2 + argc, (count - 2 - (size_t)argc) * sizeof(char *));
    fields[2 + argc] = NULL;
    fields[count + 1] = NULL;
    *envp = fields + 2 + argc + 1;
    return 0;
}

static char *payload(int ctl, uint32_t length) {
    char *buf = malloc(length + 1);
    if (!buf || read_full(ctl, buf, length) < 0) return NULL;
    buf[length] = '\0';
    return buf;
}

/* Fork and exec the request's command with fds[0..2] as its stdio (the parent closes them). */
static pid_t start_command(int ctl, uint32_t length, int fds[3]) {
    char *buf = payload(ctl, length), *cwd;
    char **argv, **envp;
    pid_t pid = -1;
    if (buf && parse(buf, length, &cwd, &argv, &envp) == 0 && (pid = fork()) == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int i = 0; i < 3; i++) dup2(fds[i], i);  /* received fds are >= 3, close-on-exec */
        extern char **environ;
        environ = envp;
        _exit(run_exec(cwd, argv));
    }
    for (int i = 0; i < 3; i++) close(fds[i]);
    free(buf);  /* the child has its copy */
    return pid;
}

static void say(int fd, char kind, int value) {
    char line[32];
    int n = snprintf(line, sizeof line, "%c %d\n", kind, value);
    if (write(fd, line, (size_t)n) < 0) {}
}

#define MAX_EXECS 1024
static pid_t exec_pids[MAX_EXECS];
static int exec_fds[MAX_EXECS];

/* A sandbox exec: "P <pid>" on its status fd now, "X <wait status>" when it ends. */
static void start_exec(int ctl, uint32_t length, int fds[4]) {
    int slot = 0;
    while (slot < MAX_EXECS && exec_pids[slot]) slot++;
    pid_t pid = slot < MAX_EXECS ? start_command(ctl, length, fds) : -1;
    if (pid <= 0) {
        if (slot == MAX_EXECS) for (int i = 0; i < 3; i++) close(fds[i]);
        close(fds[3]);  /* the owner reads end of file: the exec could not start */
        return;
    }
    say(fds[3], 'P', pid);
    exec_pids[slot] = pid;
    exec_fds[slot] = fds[3];
}

static void exec_ended(pid_t pid, int status) {
    for (int slot = 0; slot < MAX_EXECS; slot++) {
        if (exec_pids[slot] != pid) continue;
        say(exec_fds[slot], 'X', status);
        close(exec_fds[slot]);
        exec_pids[slot] = 0;
        return;
    }
}

static int run_serve(void) {
    if (getpid() != 1) {  /* its kill(-1) is for a container's pid namespace only */
        fprintf(stderr, "sandpool-init: 22 serve: not PID 1\n");
        return 2;
    }
    int ctl = 0, claimed = 0;
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    int sfd = signalfd(-1, &all, SFD_CLOEXEC);
    fcntl(ctl, F_SETFD, FD_CLOEXEC);
    pid_t command = 0;
    for (;;) {
        struct pollfd p[2] = {{sfd, POLLIN, 0}, {ctl, POLLIN, 0}};
        if (poll(p, ctl >= 0 ? 2 : 1, -1) < 0) continue;
        if (p[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == sizeof si
                && (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)) return 0;
            int status;
            pid_t pid;
            while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                if (pid != command) {
                    exec_ended(pid, status);
                    continue;
                }
                kill(-1, SIGKILL);  /* nothing the command left behind outlives it */
                while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {}
                say(ctl, 'X', status);
                return 0;
            }
        }
        if (ctl < 0 || !p[1].revents) continue;
        if (command > 0) {  /* the owner went away during a run: end it all */
            kill(-1, SIGKILL);
            return 1;
        }
        int fds[4], nfds;
        uint32_t length;
        int kind = receive(ctl, fds, &nfds, &length);
        char *pid_text;
        if (kind == 'K') {
            claimed = 1;
        } else if (kind == 'R' && !claimed) {
            if ((command = start_command(ctl, length, fds)) <= 0) return 0;
        } else if (kind == 'E') {
            claimed = 1;
            start_exec(ctl, length, fds);
        } else if (kind == 'G' && (pid_text = payload(ctl, length))) {
            if (atoi(pid_text) > 1) kill_group(atoi(pid_text));  /* never -1: everything */
            free(pid_text);
        } else {
            for (int i = 0; i < nfds; i++) close(fds[i]);
            if (!claimed) return 0;  /* the owner died while it was warm: it ends */
            close(ctl);  /* a sandbox's owner went away: it lives on (runtime execs) */
            ctl = -1;
        }
    }
}

/* gVisor's pre-started exec: see the header. Reads never go past the request (a pipe's read
 * returns at most what was asked), so the rest of stdin is left to the command. */
static int run_stub(void) {
    uint32_t length;
    char *buf, *cwd, **argv, **envp;
    if (read_full(0, (char *)&length, sizeof length) < 0) return 0;  /* unused: closed */
    if (length > MAX_REQUEST || !(buf = payload(0, length))
        || parse(buf, length, &cwd, &argv, &envp) < 0) {
        fprintf(stderr, "sandpool: bad exec request\n");
        return 125;
    }
    if (write(1, "R", 1) != 1) return 125;
    for (char **e = envp; *e; e++)
        if (strchr(*e, '=')) putenv(*e);
    return run_exec(cwd, argv);
}

static int copy(int in, int out) {
    static char buf[1 << 16];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n == 0) return 0;
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0) {
                if (errno == EINTR) continue;
                return -1;
            }
            done += w;
        }
    }
}

static int put(const char *path, const char *mode) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)strtol(mode, 0, 8));
    if (fd < 0) return fail(path);
    if (copy(0, fd) < 0) return fail(path);
    if (fsync(fd) < 0 && errno != EINVAL) return fail(path);
    if (close(fd) < 0) return fail(path);
    return 0;
}

static int get(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) return fail(path);
    if (!S_ISREG(st.st_mode)) {
        errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        return fail(path);
    }
    fcntl(fd, F_SETFL, 0);
    return copy(fd, 1) < 0 ? fail(path) : 0;
}

static void entry(const char *name, const struct stat *st) {
    char type = S_ISREG(st->st_mode) ? 'f' : S_ISDIR(st->st_mode) ? 'd'
              : S_ISLNK(st->st_mode) ? 'l' : 'o';
    long long ns = (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
    printf("%c %o %lld %lld %s", type, st->st_mode & 07777, (long long)st->st_size, ns, name);
    putchar('\0');
}

static int stat_one(const char *path) {
    struct stat st;
    if (lstat(path, &st) < 0) return fail(path);
    entry(path, &st);
    return 0;
}

static int list(const char *path) {
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = dfd < 0 ? NULL : fdopendir(dfd);
    if (!dir) return fail(path);
    struct dirent *d;
    while ((d = readdir(dir))) {
        struct stat st;
        if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, "..")) continue;
        if (fstatat(dfd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) entry(d->d_name, &st);
    }
    return 0;
}

static int make_dirs(char *path, int parents) {
    if (!parents) return mkdir(path, 0755) < 0 ? fail(path) : 0;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST) return fail(path);
        *p = '/';
    }
    if (mkdir(path, 0755) < 0 && errno != EEXIST) return fail(path);
    struct stat st;
    if (stat(path, &st) < 0) return fail(path);
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return fail(path);
    }
    return 0;
}

static int remove_at(int dfd, const char *name) {
    if (unlinkat(dfd, name, 0) == 0) return 0;
    if (errno != EISDIR && errno != EPERM) return -1;
    int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *dir = sub < 0 ? NULL : fdopendir(sub);
    if (!dir) return -1;
    struct dirent *d;
    while ((d = readdir(dir))) {
        if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, "..")) continue;
        if (remove_at(sub, d->d_name) < 0) {
            closedir(dir);
            return -1;
        }
    }
    closedir(dir);
    return unlinkat(dfd, name, AT_REMOVEDIR);
}

static int rm(const char *path, int recursive) {
    if (recursive) return remove_at(AT_FDCWD, path) < 0 ? fail(path) : 0;
    if (unlink(path) == 0) return 0;
    if (errno != EISDIR && errno != EPERM) return fail(path);
    return rmdir(path) < 0 ? fail(path) : 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "init";
    if (!strcmp(mode, "init")) return run_init();
    if (!strcmp(mode, "serve")) return run_serve();
    if (!strcmp(mode, "exec") && argc > 3) return run_exec(argv[2], argv + 3);
    if (!strcmp(mode, "stub") && argc == 2) return run_stub();
    if (!strcmp(mode, "killpg") && argc == 3)
        return kill_group(atoi(argv[2])) < 0 ? fail("killpg") : 0;
    if (!strcmp(mode, "put") && argc == 4) return put(argv[2], argv[3]);
    if (!strcmp(mode, "get") && argc == 3) return get(argv[2]);
    if (!strcmp(mode, "stat") && argc == 3) return stat_one(argv[2]);
    if (!strcmp(mode, "ls") && argc == 3) return list(argv[2]);
    if (!strcmp(mode, "mkdir") && argc == 4) return make_dirs(argv[2], atoi(argv[3]));
    if (!strcmp(mode, "rm") && argc == 4) return rm(argv[2], atoi(argv[3]));
    if (!strcmp(mode, "mv") && argc == 4) return rename(argv[2], argv[3]) < 0 ? fail(argv[2]) : 0;
    fprintf(stderr, "sandpool-init: 22 usage: bad mode or arguments\n");
    return 2;
}
