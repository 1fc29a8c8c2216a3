/*
 * Fuzz target: the snapshot loader. The input is a state file
 * (docs/snapshot-format.md), and the target does with it everything
 * `petrel run --restore` does that needs no KVM, in the restore's order:
 *
 *   snapshot_check() (size, structure, the root's compatible);
 *   snapshot_config_take() (the machine to build);
 *   the node "kvm": x86_vm_state_take();
 *   each "vcpus/vcpuN" the configuration names: x86_vcpu_state_take(),
 *   x86_cpuid_check() against a fixed table, x86_vcpu_state_advance_tsc();
 *   as many vCPU nodes as the configuration says;
 *   the node "devices": hwdev_list_restore() onto freshly made devices of the
 *   machine the configuration describes (COM1, i8042, ACPI PM, RTC, the PCI
 *   host bridge, virtio-rng, one virtio-blk per drive, virtio-console), on
 *   fake guest RAM of the configuration's size (capped), fake buses, fake
 *   interrupt lines and a fake clock, named and ordered as machine.c does
 *   (fuzz_snapshot_machine.h).
 *
 * The RAM stands for the snapshot's memory file: zeros, but for each enabled
 * virtqueue the ring indexes the state gives (and a virtio-console's held
 * chain), as the memory file of the same snapshot would have them; unless
 * the FDT header's boot_cpuid_phys (which petrel writes as 0 and never reads)
 * is odd, when the RAM stays all zeros and the checks of the state against
 * guest memory are what refuses it. Drives are memfds of FUZZ_DISK_SECTORS
 * sectors standing for the files the configuration names (never opened: the
 * input is hostile), with the configuration's path as their identity.
 *
 * Invariants, after each input (ASan and UBSan see the rest):
 *   - a refusal always comes with a message;
 *   - what the x86 nodes held, written back and read again, is the same;
 *   - after a successful restore the devices work: saved again (which must
 *     succeed), restored onto a second set of fresh devices (which must
 *     succeed) and saved again, the two saves are the same bytes but for the
 *     ACPI PM timer, which runs on the host's clock; then every device answers
 *     a driver's register reads and the loop runs its kicks, leaving the
 *     virtio transports consistent (fuzz_virtio_check_locked()) and no
 *     virtio-blk request in flight.
 *
 * Seeds: fuzz_snapshot_seeds.c writes them at build time with petrel's own
 * writers. PETREL_FUZZ_VERBOSE=1 prints each input's outcome on stderr.
 *
 * usage: fuzz_snapshot_driver CORPUS [N] (tests/fuzz/driver.c), or with
 * libFuzzer: build-fuzz/tests/fuzz/fuzz_snapshot CORPUS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_snapshot_machine.h"

#define FUZZ_ADVANCE_NS (3600 * 1000000000ULL) /* the snapshot was away an hour */

/* A refusal must say why: err negative, a message in eb. */
static void check_refusal(int err, const struct errbuf *eb)
{
    FUZZ_CHECK(err < 0);
    FUZZ_CHECK(eb->msg[0] != '\0');
}

static void say(const char *stage, const struct errbuf *eb)
{
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("PETREL_FUZZ_VERBOSE") != NULL;
    if (verbose)
        fprintf(stderr, "fuzz_snapshot: %s%s%s\n", stage, eb && eb->msg[0] ? ": " : "",
                eb ? eb->msg : "");
}

/* Writes a tree whose root fill writes (snapshot_build(), without the root's compatible check). */
static int build(void (*fill)(struct state_out *out, void *ctx), void *ctx, void **buf, size_t *len)
{
    struct errbuf eb = {{0}};
    int ret = snapshot_build(fill, ctx, buf, len, &eb);
    if (ret)
        check_refusal(ret, &eb);
    return ret;
}

/* ---- the x86 nodes: taken, written back, taken again: the same ---- */

struct vcpu_ctx {
    const struct x86_vcpu_state *st;
};

static void put_vcpu(struct state_out *out, void *ctx)
{
    state_begin(out, "vcpu0", X86_VCPU_STATE_COMPATIBLE);
    x86_vcpu_state_put(((struct vcpu_ctx *)ctx)->st, out);
    state_end(out);
}

static void put_vm(struct state_out *out, void *ctx)
{
    state_begin(out, "kvm", X86_VM_STATE_COMPATIBLE);
    x86_vm_state_put(ctx, out);
    state_end(out);
}

static void vcpu_round_trip(const struct x86_vcpu_state *st, struct x86_vcpu_state *again)
{
    struct vcpu_ctx ctx = {st};
    struct errbuf eb = {{0}};
    void *tree;
    size_t len;

    FUZZ_CHECK(build(put_vcpu, &ctx, &tree, &len) == 0);
    struct state_in root = {.fdt = tree, .eb = &eb}, in;
    FUZZ_CHECK(state_open(&root, "vcpu0", X86_VCPU_STATE_COMPATIBLE, &in) == 0);
    FUZZ_CHECK(x86_vcpu_state_take(again, &in) == 0);
    FUZZ_CHECK(memcmp(st, again, sizeof(*st)) == 0);
    free(tree);
}

static void vm_round_trip(const struct x86_vm_state *st)
{
    struct x86_vm_state again;
    struct errbuf eb = {{0}};
    void *tree;
    size_t len;

    FUZZ_CHECK(build(put_vm, (void *)st, &tree, &len) == 0);
    struct state_in root = {.fdt = tree, .eb = &eb}, in;
    FUZZ_CHECK(state_open(&root, "kvm", X86_VM_STATE_COMPATIBLE, &in) == 0);
    FUZZ_CHECK(x86_vm_state_take(&again, &in) == 0);
    FUZZ_CHECK(memcmp(st, &again, sizeof(*st)) == 0);
    free(tree);
}

/* As vm_restore_kvm() and vm_restore_vcpu() but for the ioctls. 0 or -errno with eb. */
static int take_kvm(const void *fdt, const struct vm_config *cfg, struct errbuf *eb)
{
    struct state_in root = {.fdt = fdt, .eb = eb}, kvm, vcpus, in;
    struct x86_vm_state vs;
    int ret;

    if (state_open(&root, "kvm", X86_VM_STATE_COMPATIBLE, &kvm))
        return kvm.err;
    ret = x86_vm_state_take(&vs, &kvm);
    if (ret)
        return ret;
    vm_round_trip(&vs);

    struct x86_vcpu_state *st = malloc(sizeof(*st)), *again = malloc(sizeof(*again));
    union x86_cpuid_table *host = malloc(sizeof(*host));
    FUZZ_CHECK(st && again && host);
    fixed_cpuid(host);
    for (unsigned i = 0; i < cfg->cpus && !ret; i++) {
        char name[16];
        snprintf(name, sizeof(name), "vcpu%u", i);
        if (state_open(&root, "vcpus", "petrel,vcpus-v1", &vcpus)) {
            ret = vcpus.err;
            break;
        }
        if (state_open(&vcpus, name, X86_VCPU_STATE_COMPATIBLE, &in)) {
            ret = in.err;
            break;
        }
        ret = x86_vcpu_state_take(st, &in);
        if (ret)
            break;
        vcpu_round_trip(st, again);
        ret = x86_cpuid_check(&st->cpuid.hdr, &host->hdr, eb);
        if (!ret)
            x86_vcpu_state_advance_tsc(st, FUZZ_ADVANCE_NS);
    }
    free(st);
    free(again);
    free(host);
    if (ret)
        return ret;

    /* vm_restore_devices(): a state with more vCPUs than its configuration is not its machine's. */
    unsigned n = 0;
    int sub;
    FUZZ_CHECK(state_open(&root, "vcpus", "petrel,vcpus-v1", &vcpus) == 0);
    fdt_for_each_subnode(sub, fdt, vcpus.node) n++;
    if (n != cfg->cpus)
        return state_invalid(&vcpus, "holds %u vCPUs, the configuration %u", n, cfg->cpus);
    return 0;
}

/* The devices saved (which must succeed), with the ACPI PM timer (the host's clock) zeroed. */
static void *machine_save(struct machine *m, size_t *len)
{
    void *tree;
    FUZZ_CHECK(build(save_devices, m, &tree, len) == 0);
    int pm = fdt_path_offset(tree, "/devices/pm");
    FUZZ_CHECK(pm >= 0 && fdt_setprop_inplace_u32(tree, pm, "timer", 0) == 0);
    return tree;
}

static void check_virtio(struct virtio_dev *v, bool blk)
{
    virtio_lock(v);
    fuzz_virtio_check_locked(v);
    if (blk)
        FUZZ_CHECK(container_of(v, struct virtio_blk, vdev)->inflight == 0);
    virtio_unlock(v);
}

static uint64_t pio_rd(struct machine *m, uint16_t port, unsigned size)
{
    uint64_t v = 0;
    FUZZ_CHECK(bus_dispatch(&m->pio, port, &v, size, false) == 0);
    return v;
}

static void pio_wr(struct machine *m, uint16_t port, uint64_t v, unsigned size)
{
    FUZZ_CHECK(bus_dispatch(&m->pio, port, &v, size, true) == 0);
}

/* A driver's reads of every device (each must answer), and the loop's turn for their kicks. */
static void machine_exercise(struct machine *m)
{
    static uint32_t regs[FAKE_VIRTIO_REGS];

    for (unsigned r = 0; r < UART_NR_REGS; r++)
        (void)pio_rd(m, UART_COM1_BASE + r, 1);
    pio_wr(m, UART_COM1_BASE, 'x', 1);
    (void)pio_rd(m, I8042_DATA_PORT + 4, 1);
    (void)pio_rd(m, I8042_DATA_PORT, 1);
    for (unsigned r = 0; r < PLAT_PM_PORTS; r += 4)
        (void)pio_rd(m, PLAT_PM1A_EVT_PORT + r, 4);
    for (unsigned r = 0; r < 0x0e; r++) {
        pio_wr(m, RTC_CMOS_INDEX_PORT, r, 1);
        (void)pio_rd(m, RTC_CMOS_INDEX_PORT + 1, 1);
    }
    for (unsigned slot = 0; slot < 8; slot++) {
        pio_wr(m, PLAT_PCI_CONF_PORT, 0x80000000u | slot << 11, 4);
        (void)pio_rd(m, PLAT_PCI_CONF_PORT + 4, 4);
    }
    event_base_loop(m->base, EVLOOP_NONBLOCK);
    for (struct hwdev *d = m->devices.head; d; d = d->next) {
        struct virtio_dev *v = NULL;
        bool blk = false;
        if (d->ops == &fake_rng)
            v = &container_of(d, struct f_rng, hw)->rng.vdev;
        else if (d->ops == &fake_vcons)
            v = &container_of(d, struct f_vcons, hw)->vc.vdev;
        else if ((blk = d->ops == &fake_blk))
            v = &container_of(d, struct f_blk, hw)->blk.vdev;
        if (!v)
            continue;
        check_virtio(v, blk);
        (void)fake_virtio_read_regs(&m->mmio, v, regs);
        check_virtio(v, blk);
    }
}

/* ---- the input ---- */

/* The devices node onto fresh devices; if it restores, the invariants above. */
static void restore_devices(const void *fdt, const struct vm_config *cfg, int *disks)
{
    struct errbuf eb = {{0}};
    struct ram ram;
    struct machine *m = malloc(sizeof(*m));
    size_t len1, len2;

    FUZZ_CHECK(m && ram_init(&ram, cfg) == 0);
    if (!(fdt_boot_cpuid_phys(fdt) & 1))
        ram_fill(&ram, fdt);
    int ret = machine_init(m, cfg, &ram, disks, &eb);
    if (!ret)
        ret = machine_restore(m, fdt, &eb);
    if (ret) {
        check_refusal(ret, &eb);
        say("devices refused", &eb);
        goto out;
    }
    void *saved = machine_save(m, &len1);
    machine_destroy(m); /* it holds the drives' locks */
    /* A second process restoring what the first saved, on the same memory (nothing ran). */
    FUZZ_CHECK(machine_init(m, cfg, &ram, disks, &eb) == 0);
    ret = machine_restore(m, saved, &eb);
    if (ret)
        fprintf(stderr, "fuzz_snapshot: a saved state does not restore: %s\n", eb.msg);
    FUZZ_CHECK(ret == 0);
    void *again = machine_save(m, &len2);
    FUZZ_CHECK(len1 == len2 && memcmp(saved, again, len1) == 0);
    free(saved);
    free(again);
    machine_exercise(m);
    say("restored", NULL);
out:
    machine_destroy(m);
    free(m);
    ram_destroy(&ram);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int disks[VIRTIO_BLK_MAX_DRIVES];
    struct errbuf eb = {{0}};
    struct vm_config cfg = {0};
    const char *mem_path;

    fuzz_disks_reset(disks); /* the same disks for every input */
    /* libfdt reads the tree in place: its cells aligned as a file read into malloc() is. */
    void *fdt = malloc(size ? size : 1);
    FUZZ_CHECK(fdt);
    memcpy(fdt, data, size);
    int ret = snapshot_check(fdt, size, "input", &eb);
    if (ret) {
        check_refusal(ret, &eb);
        say("refused", &eb);
        goto out;
    }
    struct state_in root = {.fdt = fdt, .eb = &eb};
    ret = snapshot_config_take(&root, &cfg, &mem_path);
    if (!ret)
        ret = take_kvm(fdt, &cfg, &eb);
    if (ret) {
        check_refusal(ret, &eb);
        say("refused", &eb);
        goto out;
    }
    FUZZ_CHECK(mem_path && cfg.cpus >= 1 && cfg.memory >= VM_MIN_MEMORY);
    restore_devices(fdt, &cfg, disks);
out:
    free(fdt);
    return 0;
}
