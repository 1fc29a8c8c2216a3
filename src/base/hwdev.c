/* The device model's list: each step of a device's life run over every instance. */
#include "petrel/hwdev.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfdt.h>

void hwdev_init(struct hwdev *dev, const struct hwdev_ops *ops, const struct hwdev_host *host,
                const char *name)
{
    *dev = (struct hwdev){.ops = ops, .host = host};
    snprintf(dev->name, sizeof(dev->name), "%s", name);
}

void hwdev_list_init(struct hwdev_list *l)
{
    *l = (struct hwdev_list){.tail = &l->head};
}

void hwdev_list_add(struct hwdev_list *l, struct hwdev *dev)
{
    dev->next = NULL;
    *l->tail = dev;
    l->tail = &dev->next;
    l->count++;
}

int hwdev_list_create(struct hwdev_list *l, const struct hwdev_ops *ops,
                      const struct hwdev_host *host, unsigned index, struct errbuf *eb)
{
    struct hwdev *dev = calloc(1, ops->size);
    if (!dev)
        return err_set(eb, -ENOMEM, "out of memory for %s", ops->name);
    hwdev_init(dev, ops, host, ops->name);
    hwdev_list_add(l, dev);
    return ops->create ? ops->create(dev, index, eb) : 0;
}

struct hwdev *hwdev_list_find(const struct hwdev_list *l, const char *name)
{
    for (struct hwdev *d = l->head; d; d = d->next) {
        if (strcmp(d->name, name) == 0)
            return d;
    }
    return NULL;
}

int hwdev_list_realize(struct hwdev_list *l, struct errbuf *eb)
{
    for (struct hwdev *d = l->head; d; d = d->next) {
        if (d->realized || !d->ops->realize) {
            d->realized = true;
            continue;
        }
        int ret = d->ops->realize(d, eb);
        if (ret)
            return ret;
        d->realized = true;
    }
    return 0;
}

void hwdev_list_reset(struct hwdev_list *l)
{
    for (struct hwdev *d = l->head; d; d = d->next) {
        if (d->ops->reset)
            d->ops->reset(d);
    }
}

void hwdev_list_pause(struct hwdev_list *l)
{
    for (struct hwdev *d = l->head; d; d = d->next) {
        if (d->ops->pause)
            d->ops->pause(d);
    }
}

void hwdev_list_resume(struct hwdev_list *l)
{
    for (struct hwdev *d = l->head; d; d = d->next) {
        if (d->ops->resume)
            d->ops->resume(d);
    }
}

int hwdev_list_save(struct hwdev_list *l, struct state_out *out)
{
    for (struct hwdev *d = l->head; d && !out->err; d = d->next) {
        if (!d->ops->save)
            continue;
        state_begin(out, d->name, d->ops->compatible);
        int ret = out->err ? out->err : d->ops->save(d, out);
        if (ret && !out->err)
            out->err = ret;
        state_end(out);
    }
    return out->err;
}

int hwdev_list_restore(struct hwdev_list *l, struct state_in *in)
{
    for (struct hwdev *d = l->head; d && !in->err; d = d->next) {
        if (!d->ops->restore)
            continue;
        struct state_in node;
        if (state_open(in, d->name, d->ops->compatible, &node))
            return in->err = node.err;
        int ret = d->ops->restore(d, &node);
        if (ret)
            return in->err = ret;
    }
    if (in->err)
        return in->err;
    /* A node no device claims is state this machine would lose: another machine's. */
    int sub;
    fdt_for_each_subnode(sub, in->fdt, in->node)
    {
        const char *name = fdt_get_name(in->fdt, sub, NULL);
        const struct hwdev *d = name ? hwdev_list_find(l, name) : NULL;
        if (!d || !d->ops->restore)
            return state_invalid(in, "holds a device '%s' this machine does not have",
                                 name ? name : "?");
        /* Restored from the first node of its name: a second would be silently ignored. */
        if (fdt_subnode_offset(in->fdt, in->node, name) != sub)
            return state_invalid(in, "holds the device '%s' twice", name);
    }
    return 0;
}

void hwdev_list_drain(struct hwdev_list *l)
{
    for (struct hwdev *d = l->head; d; d = d->next) {
        if (d->ops->drain)
            d->ops->drain(d);
    }
}

void hwdev_list_stats(struct hwdev_list *l, struct hwdev_stats *st)
{
    *st = (struct hwdev_stats){0};
    for (struct hwdev *d = l->head; d; d = d->next) {
        if (d->ops->stats)
            d->ops->stats(d, st);
    }
}

void hwdev_list_destroy(struct hwdev_list *l)
{
    /* Last first: a device may use one set up before it (a PCI function, its bus). */
    while (l->head) {
        struct hwdev **pp = &l->head;
        while ((*pp)->next)
            pp = &(*pp)->next;
        struct hwdev *d = *pp;
        *pp = NULL;
        l->count--;
        d->ops->destroy(d);
        free(d);
    }
    hwdev_list_init(l);
}
