/*
 * The device model: every device is an instance (a struct hwdev, "hardware
 * device", embedded in the device's own struct; bus.h's struct device is the
 * register-access side of the same device) with an ops table covering its whole life, and the VM
 * runs each step over its list of instances, in the machine table's order (machine.c). Modelled on
 * kvmtool's init levels, Firecracker's DeviceManager/Persist and Cloud Hypervisor's Snapshottable.
 *
 *   create    allocate the instance from its part of the configuration, and open
 *             what it needs from the host (a drive's file), before KVM is touched
 *   realize   claim ports, MMIO, a PCI slot, IRQ/MSI routes and loop events
 *   reset     a machine reset (optional)
 *   pause     every vCPU is parked; resume: they run again (optional; both return
 *             at once: a pause never waits for the disk)
 *   save      write the device's state properties (its node is begun and ended by
 *             the caller, named after the instance, with ops->compatible)
 *   restore   read them back into a realized device, validating every value
 *   drain     (a snapshot) wait, on a worker, until no host I/O is in flight
 *   destroy   undo whatever create and realize did (dev->realized says how far it
 *             got); the list then frees the instance: the one teardown path, from
 *             any point of a failed set-up
 *
 * Devices reach the VM only through struct hwdev_host: what a device may use
 * of the machine, not the VM itself.
 */
#ifndef PETREL_HWDEV_H
#define PETREL_HWDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "petrel/exit.h"
#include "petrel/state.h"
#include "petrel/util.h"

struct bus;
struct event_base;
struct guest_mem;
struct hwdev;
struct hwdev_list;
struct irq_routing;
struct outbuf;
struct pci_bus;
struct vm_config;

/* A console device as the VM's console sees it (the UART, virtio-console). */
struct console_port {
    void *dev;
    /* Typed input, on the loop: returns how many bytes the device took. */
    size_t (*receive)(void *dev, const uint8_t *buf, size_t len);
    /* Sets what the device calls when it has room for input again (NULL: nothing). */
    void (*set_room_hook)(void *dev, void (*hook)(void *ctx), void *ctx);
    /* The console's output has room again (on the loop). */
    void (*tx_space)(void *dev);
};

/* What the VM asks of whichever device plays a role; each set by that device's realize. */
struct hwdev_roles {
    /* Presses the ACPI power button: false if the guest has not enabled it. */
    bool (*power_button)(void *dev);
    void *power_button_dev;
    /* Queues bytes from the keyboard (Ctrl-Alt-Del): 0 or -errno. */
    int (*keys)(void *dev, const uint8_t *scancodes, size_t len);
    void *keys_dev;
};

/*
 * What a device may use of the machine. The VM fills it in stages: cfg is there
 * for create; the rest (KVM, buses, the loop) from realize on.
 */
struct hwdev_host {
    const struct vm_config *cfg;
    int vm_fd;
    struct guest_mem *mem;
    struct bus *pio, *mmio;
    struct pci_bus *pci; /* bus 0 */
    struct irq_routing *routing;
    struct event_base *base;
    struct exit_hook exit;       /* a device ending the VM (debug-exit, reset, poweroff) */
    struct outbuf *console_out;  /* the console's output */
    struct outbuf *debugcon_out; /* the console's, or --debugcon FILE's */
    struct hwdev_roles *roles;
    struct trace *trace; /* event tracing (trace.h): hooks test its flags */
    /* A console device connects at realize (input: it takes typed input, the last one
     * asking wins) and disconnects in destroy. */
    void (*console_connect)(void *vm, const struct console_port *port, bool input);
    void (*console_disconnect)(void *vm, const struct console_port *port);
    /* A device broke (a guest's bad ring) and asks its driver for a reset: any thread,
     * under the device's lock; the VM tells GET /events' clients. NULL: nobody. */
    void (*device_needs_reset)(void *vm, const char *device, const char *why);
    void *vm;
};

/* Counters a device keeps for `petrel run --stats` and GET /stats (each stats op adds its own). */
struct hwdev_stats {
    uint64_t output_dropped;         /* console bytes the guest wrote that were lost */
    uint64_t net_dropped;            /* network frames dropped (virtio_net.h says when) */
    uint64_t interrupts;             /* raised: MSI-X messages, line assertions */
    uint64_t requests;               /* virtqueue chains taken */
    uint64_t bytes_out;              /* bytes of those chains the device read (driver to device) */
    uint64_t bytes_in;               /* bytes the device wrote back (the used lengths) */
    uint64_t errors;                 /* requests that failed (an I/O error, a bad request) */
    uint64_t reads, writes, flushes; /* virtio-blk requests by type */
};

struct hwdev_ops {
    const char *type;       /* "uart8250", "virtio-blk": for messages */
    const char *compatible; /* its state node's, versioned: "petrel,uart8250-v1" */
    size_t size;            /* the instance's struct, whose first member is the struct hwdev */
    const char *name;       /* the instance's name, unless create sets another */
    /* Optional: the instance number index of its kind (a drive's place on the command
     * line), allocated and zeroed; a failure still ends in destroy. */
    int (*create)(struct hwdev *dev, unsigned index, struct errbuf *eb);
    int (*realize)(struct hwdev *dev, struct errbuf *eb);
    void (*reset)(struct hwdev *dev);
    void (*pause)(struct hwdev *dev);
    void (*resume)(struct hwdev *dev);
    int (*save)(struct hwdev *dev, struct state_out *out);
    int (*restore)(struct hwdev *dev, struct state_in *in);
    void (*destroy)(struct hwdev *dev);
    void (*stats)(struct hwdev *dev, struct hwdev_stats *st); /* adds its counters */
    /* Optional: waits until no host I/O it started is in flight (a snapshot, with the
     * VM paused). It blocks: it runs on a worker, never on the loop or a vCPU. */
    void (*drain)(struct hwdev *dev);
};

/* Embedded in each device's own struct (container_of), filled by hwdev_init(). */
struct hwdev {
    const struct hwdev_ops *ops;
    const struct hwdev_host *host;
    char name[32]; /* the instance: "com1", "vda"; its state node's name */
    bool realized; /* realize succeeded: destroy has it to undo */
    struct hwdev *next;
};

/*
 * Allocates an instance of ops (ops->size bytes, zeroed), initialises it as ops->name
 * and runs ops->create; either way it is on l, for hwdev_list_destroy(). 0 or -errno.
 */
int hwdev_list_create(struct hwdev_list *l, const struct hwdev_ops *ops,
                      const struct hwdev_host *host, unsigned index, struct errbuf *eb) MUST_CHECK;

/* What create() calls on the device it allocated. */
void hwdev_init(struct hwdev *dev, const struct hwdev_ops *ops, const struct hwdev_host *host,
                const char *name);

/* The instances of a VM, in machine order. */
struct hwdev_list {
    struct hwdev *head, **tail;
    unsigned count;
};

void hwdev_list_init(struct hwdev_list *l);

/* Appends a created device. */
void hwdev_list_add(struct hwdev_list *l, struct hwdev *dev);

/* The first device named name, or NULL. */
struct hwdev *hwdev_list_find(const struct hwdev_list *l, const char *name);

/* Realizes every device in order; stops at the first failure (eb says which). */
int hwdev_list_realize(struct hwdev_list *l, struct errbuf *eb) MUST_CHECK;

void hwdev_list_reset(struct hwdev_list *l);
void hwdev_list_pause(struct hwdev_list *l);
void hwdev_list_resume(struct hwdev_list *l);

/* Saves every device that has state as a subnode of the node out is in. */
int hwdev_list_save(struct hwdev_list *l, struct state_out *out) MUST_CHECK;

/* Restores every device that has state from the subnodes of in (an unknown node is refused). */
int hwdev_list_restore(struct hwdev_list *l, struct state_in *in) MUST_CHECK;

/* Drains every device (on a worker, the VM paused: see drain). */
void hwdev_list_drain(struct hwdev_list *l);

/* Sums every device's counters. */
void hwdev_list_stats(struct hwdev_list *l, struct hwdev_stats *st);

/* Destroys and frees every device (allocated with malloc), last first; the list is empty after. */
void hwdev_list_destroy(struct hwdev_list *l);

#endif
