/* The machine table (machine.c): the devices a VM has, in order. */
#ifndef PETREL_MACHINE_H
#define PETREL_MACHINE_H

#include "petrel/hwdev.h"

/*
 * Creates every device host->cfg asks for, in machine order, onto l. On failure
 * returns -errno with eb; what was created is on l for hwdev_list_destroy().
 */
int machine_create(struct hwdev_list *l, const struct hwdev_host *host,
                   struct errbuf *eb) MUST_CHECK;

#endif
