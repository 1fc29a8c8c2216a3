/*
 * A test-and-set spinlock for the few things CPUs share (the console). xchg
 * with memory is locked without a prefix, and the emulator on kvm_pvm runs it
 * (PVM.md); waiters spin on a plain read so the line is not bounced.
 */
#ifndef KIT_SPINLOCK_H
#define KIT_SPINLOCK_H

#include "kit/io.h"

#include <stdint.h>

struct kit_spinlock {
    volatile uint32_t locked; /* 1 while held */
};

static inline void kit_spin_lock(struct kit_spinlock *l)
{
    for (;;) {
        uint32_t v = 1;

        __asm__ volatile("xchgl %0, %1" : "+r"(v), "+m"(l->locked) : : "memory");
        if (!v)
            return;
        while (l->locked)
            cpu_relax();
    }
}

static inline void kit_spin_unlock(struct kit_spinlock *l)
{
    /* x86 keeps stores in order: the compiler barrier is all a release needs. */
    __asm__ volatile("" : : : "memory");
    l->locked = 0;
}

#endif
