/* sandpool-init: a sandbox's PID 1, and the helper its file operations (and runc execs) use.
 *
 * Built static (no libc, shell or anything else needed from the image) and bind-mounted
 * read-only at /.sandpool/init. Modes:
 *   init                 PID 1: block every signal, reap every child, exit on SIGTERM/SIGINT.
 *   exec DIR ARGV...     chdir(DIR) (126 if it cannot), setsid() (the exec leads its own process
 *                        group, so a timeout or kill reaches its children too), then execvp;
 *                        127 not found, 126 not runnable.
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
    if (!strcmp(mode, "exec") && argc > 3) return run_exec(argv[2], argv + 3);
    if (!strcmp(mode, "killpg") && argc == 3)
        return kill(-atoi(argv[2]), SIGKILL) < 0 ? fail("killpg") : 0;
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
