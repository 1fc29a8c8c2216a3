/* Bounded byte queue from device threads to the loop, with an eventfd wake-up. */
#include "petrel/outbuf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

int outbuf_init(struct outbuf *ob, size_t cap)
{
    memset(ob, 0, sizeof(*ob));
    if (cap == 0)
        return -EINVAL;
    ob->data = malloc(cap);
    if (!ob->data)
        return -ENOMEM;
    ob->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ob->notify_fd < 0) {
        int err = -errno;
        free(ob->data);
        return err;
    }
    ob->cap = cap;
    ob->direct_fd = -1;
    pthread_mutex_init(&ob->lock, NULL);
    return 0;
}

void outbuf_destroy(struct outbuf *ob)
{
    if (!ob->data)
        return;
    close(ob->notify_fd);
    free(ob->data);
    pthread_mutex_destroy(&ob->lock);
    ob->data = NULL;
}

size_t outbuf_put(struct outbuf *ob, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    size_t direct = 0;
    bool was_empty;

    pthread_mutex_lock(&ob->lock);
    was_empty = ob->len == 0;
    /* Only while nothing is queued: queued bytes go first, through the loop. */
    while (was_empty && ob->direct_fd >= 0 && direct < len) {
        ssize_t w = write(ob->direct_fd, p + direct, len - direct);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* full or failed: the rest is queued, the loop's drain sees why */
        direct += (size_t)w;
    }
    p += direct;
    len -= direct;
    if (len > ob->cap - ob->len)
        len = ob->cap - ob->len;
    size_t tail = (ob->head + ob->len) % ob->cap;
    size_t first = len < ob->cap - tail ? len : ob->cap - tail;
    memcpy(ob->data + tail, p, first);
    memcpy(ob->data, p + first, len - first);
    ob->len += len;
    pthread_mutex_unlock(&ob->lock);

    if (was_empty && len) {
        uint64_t one = 1;
        /* Cannot fail short of a counter overflow; the loop drains regardless. */
        ssize_t n = write(ob->notify_fd, &one, sizeof(one));
        (void)n;
    }
    return direct + len;
}

void outbuf_set_direct(struct outbuf *ob, int fd)
{
    pthread_mutex_lock(&ob->lock);
    ob->direct_fd = fd;
    pthread_mutex_unlock(&ob->lock);
}

size_t outbuf_space(struct outbuf *ob)
{
    pthread_mutex_lock(&ob->lock);
    size_t space = ob->cap - ob->len;
    pthread_mutex_unlock(&ob->lock);
    return space;
}

size_t outbuf_len(struct outbuf *ob)
{
    pthread_mutex_lock(&ob->lock);
    size_t len = ob->len;
    pthread_mutex_unlock(&ob->lock);
    return len;
}

size_t outbuf_peek(struct outbuf *ob, void *buf, size_t len)
{
    uint8_t *p = buf;

    pthread_mutex_lock(&ob->lock);
    if (len > ob->len)
        len = ob->len;
    size_t first = len < ob->cap - ob->head ? len : ob->cap - ob->head;
    memcpy(p, ob->data + ob->head, first);
    memcpy(p + first, ob->data, len - first);
    pthread_mutex_unlock(&ob->lock);
    return len;
}

void outbuf_consume(struct outbuf *ob, size_t n)
{
    pthread_mutex_lock(&ob->lock);
    if (n > ob->len)
        n = ob->len;
    ob->head = (ob->head + n) % ob->cap;
    ob->len -= n;
    pthread_mutex_unlock(&ob->lock);
    if (n && ob->on_space)
        ob->on_space(ob->on_space_ctx);
}

void outbuf_ack_notify(struct outbuf *ob)
{
    uint64_t v;
    ssize_t n = read(ob->notify_fd, &v, sizeof(v));
    (void)n; /* EAGAIN when already cleared: nothing to do */
}
