/*
 * A fake interrupt line for device tests: it records the level and counts the
 * transitions. Devices that report only changes leave `repeats` at 0; tests
 * check that where the device promises it.
 */
#ifndef PETREL_TEST_FAKE_IRQ_H
#define PETREL_TEST_FAKE_IRQ_H

#include <stdbool.h>
#include <string.h>

#include "petrel/irq.h"
#include "petrel/util.h"

struct fake_irq {
    struct irq_line line;
    bool level;
    unsigned calls;   /* set_level() calls */
    unsigned raises;  /* 0 -> 1 */
    unsigned lowers;  /* 1 -> 0 */
    unsigned repeats; /* calls that did not change the level */
};

static inline int fake_irq_set(struct irq_line *line, bool level)
{
    struct fake_irq *f = container_of(line, struct fake_irq, line);
    f->calls++;
    if (level == f->level)
        f->repeats++;
    else if (level)
        f->raises++;
    else
        f->lowers++;
    f->level = level;
    return 0;
}

static inline void fake_irq_init(struct fake_irq *f)
{
    memset(f, 0, sizeof(*f));
    f->line.set_level = fake_irq_set;
}

#endif
