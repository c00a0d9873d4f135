// LD_PRELOAD shim: appends every buffer a process sends on a netlink socket to $NLCAP_FILE,
// each as a line "<hex>" per sendmsg/sendto call.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
static void dump(const void *buf, size_t len) {
    const char *path = getenv("NLCAP_FILE");
    if (!path) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    const unsigned char *p = buf;
    for (size_t i = 0; i < len; i++) fprintf(f, "%02x", p[i]);
    fputc('\n', f);
    fclose(f);
}
ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
    static ssize_t (*real)(int, const struct msghdr *, int);
    if (!real) real = dlsym(RTLD_NEXT, "sendmsg");
    size_t total = 0;
    for (size_t i = 0; i < msg->msg_iovlen; i++) total += msg->msg_iov[i].iov_len;
    unsigned char *all = malloc(total), *q = all;
    for (size_t i = 0; i < msg->msg_iovlen; i++) {
        for (size_t j = 0; j < msg->msg_iov[i].iov_len; j++) *q++ = ((unsigned char *)msg->msg_iov[i].iov_base)[j];
    }
    dump(all, total);
    free(all);
    return real(fd, msg, flags);
}
ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *a, socklen_t al) {
    static ssize_t (*real)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    if (!real) real = dlsym(RTLD_NEXT, "sendto");
    dump(buf, len);
    return real(fd, buf, len, flags, a, al);
}
