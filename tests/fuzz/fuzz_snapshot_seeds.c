/*
 * Writes fuzz_snapshot's seed corpus: state files made by petrel's own
 * writers (snapshot_build(), snapshot_config_put(), x86_vm_state_put(),
 * x86_vcpu_state_put() and each device's save), so the seeds have exactly the
 * nodes and properties a snapshot has, and stay so as the format grows.
 * Only what KVM would have given is made up: plausible register values of a
 * 64-bit guest. The devices are fuzz_snapshot_machine.h's, brought into the
 * states a guest leaves them in through their registers (a virtio driver's
 * bring-up, buffers the devices used, a virtio-console output chain held by a
 * full console), then saved.
 *
 * Then the near misses a loader must refuse, each an edit of a valid seed:
 * truncated and corrupt trees, other format versions, counts over their
 * maximum, a vCPU count the configuration does not match, a CPU of another
 * vendor, a drive that changed size or is another file, a device this
 * machine lacks, values registers cannot hold, and the valid seed with the
 * RAM left zero (the FDT header's boot_cpuid_phys odd: see fuzz_snapshot.c).
 *
 * usage: fuzz_snapshot_seeds DIR
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_snapshot_machine.h"
#include "petrel/virtqueue.h"

static const char *out_dir;

static void write_seed(const char *name, const void *buf, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", out_dir, name);
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f && fwrite(buf, 1, len, f) == len && fclose(f) == 0);
}

/* ---- KVM's part, made up ---- */

static void segment(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
    *s = (struct kvm_segment){
        .base = 0,
        .limit = 0xffffffff,
        .selector = sel,
        .type = type,
        .present = 1,
        .s = 1,
        .l = code,
        .db = !code,
        .g = 1,
    };
}

/* vCPU i of a 64-bit guest idling in its kernel; fpu: a KVM without XSAVE. */
static void make_vcpu(struct x86_vcpu_state *st, unsigned i, bool fpu)
{
    static const struct {
        uint32_t index;
        uint64_t data;
    } msrs[] = {
        {X86_MSR_IA32_TSC, 0x123456789a},
        {0x174, 0x10},                    /* SYSENTER_CS */
        {0x175, 0},                       /* SYSENTER_ESP */
        {0x176, 0},                       /* SYSENTER_EIP */
        {0x277, 0x0007040600070406},      /* PAT */
        {0xc0000081, 0x0023001000000000}, /* STAR */
        {0xc0000082, 0xffffffff81a00080}, /* LSTAR */
        {0xc0000084, 0x47700},            /* SFMASK */
        {0xc0000102, 0},                  /* KERNEL_GS_BASE */
        {X86_MSR_IA32_TSC_DEADLINE, 0},   /* */
        {0x4b564d01, 0x2001},             /* kvmclock system time, enabled */
        {0x4b564d00, 0x2000},             /* kvmclock wall clock */
    };

    memset(st, 0, sizeof(*st));
    st->regs.rip = 0xffffffff81000000 + 0x100 * i;
    st->regs.rsp = 0xffffc90000003f00;
    st->regs.rflags = 0x246;
    st->regs.rax = i;
    st->sregs.cr0 = 0x80050033;
    st->sregs.cr3 = 0x1000;
    st->sregs.cr4 = 0x3606f0;
    st->sregs.efer = 0xd01;
    st->sregs.apic_base = 0xfee00000 | 0x800 | (i == 0 ? 0x100 : 0);
    st->sregs.gdt.base = 0xfffffe0000001000;
    st->sregs.gdt.limit = 0x7f;
    st->sregs.idt.base = 0xfffffe0000000000;
    st->sregs.idt.limit = 0xfff;
    segment(&st->sregs.cs, 0x10, 11, true);
    segment(&st->sregs.ds, 0x18, 3, false);
    segment(&st->sregs.es, 0x18, 3, false);
    segment(&st->sregs.ss, 0x18, 3, false);
    segment(&st->sregs.fs, 0, 3, false);
    segment(&st->sregs.gs, 0, 3, false);
    st->sregs.tr =
        (struct kvm_segment){.selector = 0x40, .limit = 0x4087, .type = 11, .present = 1};
    st->sregs.ldt = (struct kvm_segment){.type = 2, .present = 1, .unusable = 1};
    if (fpu) {
        st->fpu.fcw = 0x37f;
        st->fpu.mxcsr = 0x1f80;
        st->fpu.ftwx = 0xff;
    } else {
        st->has_xsave = true;
        st->xsave_size = 4096;
        st->xsave.hdr.region[0] = 0x37f;  /* FCW */
        st->xsave.hdr.region[6] = 0x1f80; /* MXCSR */
        st->xsave.hdr.region[128] = 3;    /* XSTATE_BV: x87, SSE */
        st->xcrs.nr_xcrs = 1;
        st->xcrs.xcrs[0].value = 7; /* XCR0: x87, SSE, AVX */
    }
    st->msrs.hdr.nmsrs = ARRAY_SIZE(msrs);
    for (unsigned k = 0; k < ARRAY_SIZE(msrs); k++) {
        st->msrs.hdr.entries[k].index = msrs[k].index;
        st->msrs.hdr.entries[k].data = msrs[k].data;
    }
    uint32_t lapic[256] = {0};
    lapic[0x20 / 4] = i << 24;  /* ID */
    lapic[0x30 / 4] = 0x50014;  /* version */
    lapic[0xf0 / 4] = 0x1ff;    /* SVR: enabled, spurious vector 0xff */
    lapic[0x320 / 4] = 0x400ec; /* LVT timer: TSC-deadline, vector 0xec */
    memcpy(st->lapic.regs, lapic, sizeof(lapic));
    st->events.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
    st->mp_state.mp_state = i == 0 ? KVM_MP_STATE_RUNNABLE : KVM_MP_STATE_HALTED;
    st->debugregs.dr6 = 0xffff0ff0;
    st->debugregs.dr7 = 0x400;
    st->tsc_khz = 2000000;
    fixed_cpuid(&st->cpuid); /* the host's table (fuzz_snapshot_machine.h): the check passes */
}

static void make_vm(struct x86_vm_state *vs, bool pit)
{
    memset(vs, 0, sizeof(*vs));
    for (unsigned i = 0; i < 2; i++) {
        vs->pic[i].imr = i ? 0xff : 0xb8;
        vs->pic[i].irq_base = i ? 0x28 : 0x20;
        vs->pic[i].init4 = 1;
        vs->pic[i].elcr_mask = i ? 0xde : 0xf8;
    }
    vs->ioapic.base_address = 0xfec00000;
    vs->ioapic.id = 0;
    for (unsigned i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
        vs->ioapic.redirtbl[i].bits = i == 4 ? 0x24 : 1ULL << 16; /* COM1's pin routed */
    vs->has_pit = pit;
    for (unsigned i = 0; i < 3 && pit; i++) {
        vs->pit.channels[i].count = 0x10000;
        vs->pit.channels[i].mode = 0xff;
        vs->pit.channels[i].gate = i != 2;
    }
    vs->clock.clock = 12345678901;
    vs->clock.flags = KVM_CLOCK_TSC_STABLE | KVM_CLOCK_REALTIME | KVM_CLOCK_HOST_TSC;
    vs->clock.realtime = 1700000000000000000ULL;
    vs->clock.host_tsc = 0xa25b3b019df;
    vs->realtime_ns = 1700000000000100000ULL;
}

/* ---- a guest's drivers ---- */

#define RING(dev, q)  (0x100000 + 0x10000 * (dev) + 0x4000 * (q))
#define DESC(dev, q)  RING(dev, q)
#define AVAIL(dev, q) (RING(dev, q) + 0x1000)
#define USED(dev, q)  (RING(dev, q) + 0x2000)
#define BUF(dev)      (0x400000 + 0x10000 * (dev))

struct driver {
    struct machine *m;
    struct ram *ram;
    struct virtio_dev *v;
    unsigned dev;      /* which rings */
    uint16_t avail[2]; /* the driver's avail idx per queue */
    uint16_t next[2];  /* next free descriptor */
};

/* Features, every queue at RING(dev, q) with vector q + 1, MSI-X on, DRIVER_OK. */
static void drv_up(struct driver *d, uint64_t features, uint16_t size)
{
    struct bus *mmio = &d->m->mmio;
    fake_virtio_negotiate(mmio, d->v, features | 1ULL << VIRTIO_F_VERSION_1);
    fake_virtio_bar_wr(mmio, d->v, VIRTIO_COMMON_MSIX, 0, 2);
    for (unsigned q = 0; q < d->v->nr_queues; q++)
        fake_virtio_setup_queue(mmio, d->v, q, size, (uint16_t)(q + 1), DESC(d->dev, q),
                                AVAIL(d->dev, q), USED(d->dev, q));
    fake_virtio_msix_enable(d->v);
    for (unsigned n = 0; n <= d->v->nr_queues; n++)
        fake_virtio_msix_unmask(mmio, d->v, n);
    fake_virtio_driver_ok(mmio, d->v);
    event_base_loop(d->m->base, EVLOOP_NONBLOCK);
}

/* A chain of n (gpa, len, flags) buffers made available on queue q (not kicked). */
static void drv_post(struct driver *d, unsigned q, uint16_t size, const uint64_t (*segs)[3],
                     unsigned n)
{
    uint16_t head = d->next[q] % size;
    for (unsigned i = 0; i < n; i++) {
        uint16_t at = (d->next[q] + i) % size;
        struct virtq_desc desc = {
            .addr = segs[i][0],
            .len = (uint32_t)segs[i][1],
            .flags = (uint16_t)(segs[i][2] | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
            .next = (uint16_t)((at + 1) % size),
        };
        memcpy(d->ram->host + DESC(d->dev, q) + 16 * at, &desc, sizeof(desc));
    }
    d->next[q] = (uint16_t)(d->next[q] + n);
    memcpy(d->ram->host + AVAIL(d->dev, q) + 4 + 2 * (d->avail[q] % size), &head, 2);
    d->avail[q]++;
    memcpy(d->ram->host + AVAIL(d->dev, q) + 2, &d->avail[q], 2);
}

static void drv_kick(struct driver *d, unsigned q)
{
    fake_virtio_bar_wr(&d->m->mmio, d->v, VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * q, q, 2);
    event_base_loop(d->m->base, EVLOOP_NONBLOCK);
}

static struct hwdev *find(struct machine *m, const char *name)
{
    struct hwdev *d = hwdev_list_find(&m->devices, name);
    FUZZ_CHECK(d);
    return d;
}

static void pio(struct machine *m, uint16_t port, uint64_t v, unsigned size)
{
    FUZZ_CHECK(bus_dispatch(&m->pio, port, &v, size, true) == 0);
}

/* What a running guest leaves in every device of m. */
static void drive_devices(struct machine *m, struct ram *ram, bool event_idx)
{
    uint64_t ev = event_idx ? 1ULL << VIRTIO_F_EVENT_IDX : 0;

    /* COM1: 115200 8N1, FIFOs, receive interrupts; typed input waiting. */
    pio(m, UART_COM1_BASE + 3, 0x83, 1);
    pio(m, UART_COM1_BASE + 0, 0x01, 1);
    pio(m, UART_COM1_BASE + 3, 0x03, 1);
    pio(m, UART_COM1_BASE + 2, 0xc7, 1);
    pio(m, UART_COM1_BASE + 4, 0x0b, 1);
    pio(m, UART_COM1_BASE + 1, 0x05, 1);
    FUZZ_CHECK(uart8250_receive(&container_of(find(m, "com1"), struct f_uart, hw)->uart,
                                (const uint8_t *)"ls -l\r", 6) == 6);
    /* i8042: keys queued (Ctrl-Alt-Del's scancodes). */
    static const uint8_t keys[] = {0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d};
    FUZZ_CHECK(i8042_inject(&container_of(find(m, "i8042"), struct f_kbc, hw)->kbc, keys,
                            sizeof(keys)) == sizeof(keys));
    /* ACPI: the power button enabled, SCI_EN. */
    pio(m, PLAT_PM1A_EVT_PORT + 2, 0x100, 2);
    pio(m, PLAT_PM1A_EVT_PORT + 4, 0x1, 2);
    /* RTC: an alarm every minute at :30, update interrupts, NVRAM written. */
    static const uint8_t rtc[][2] = {{0x01, 0x30}, {0x03, 0xff}, {0x05, 0xff},
                                     {0x0b, 0x32}, {0x40, 0x5a}, {0x7f, 0xa5}};
    for (unsigned i = 0; i < ARRAY_SIZE(rtc); i++) {
        pio(m, RTC_CMOS_INDEX_PORT, rtc[i][0], 1);
        pio(m, RTC_CMOS_INDEX_PORT + 1, rtc[i][1], 1);
    }

    unsigned dev = 0;
    for (struct hwdev *hw = m->devices.head; hw; hw = hw->next, dev++) {
        struct driver d = {.m = m, .ram = ram, .dev = dev};
        if (hw->ops == &fake_rng) {
            /* Three buffers filled, one waiting. */
            d.v = &container_of(hw, struct f_rng, hw)->rng.vdev;
            drv_up(&d, ev, 64);
            for (unsigned i = 0; i < 3; i++) {
                const uint64_t seg[1][3] = {{BUF(dev) + 0x100 * i, 64, VIRTQ_DESC_F_WRITE}};
                drv_post(&d, 0, 64, seg, 1);
            }
            drv_kick(&d, 0);
        } else if (hw->ops == &fake_blk) {
            /* GET_ID and a write of one sector, both complete. */
            d.v = &container_of(hw, struct f_blk, hw)->blk.vdev;
            drv_up(&d, ev | 1ULL << 9 /* FLUSH */, 128);
            const uint32_t get_id[4] = {8, 0, 0, 0}, write[4] = {1, 0, 7, 0};
            memcpy(ram->host + BUF(dev), get_id, 16);
            memcpy(ram->host + BUF(dev) + 0x100, write, 16);
            const uint64_t r1[3][3] = {{BUF(dev), 16, 0},
                                       {BUF(dev) + 0x20, 20, VIRTQ_DESC_F_WRITE},
                                       {BUF(dev) + 0x40, 1, VIRTQ_DESC_F_WRITE}};
            const uint64_t r2[3][3] = {{BUF(dev) + 0x100, 16, 0},
                                       {BUF(dev) + 0x200, 512, 0},
                                       {BUF(dev) + 0x140, 1, VIRTQ_DESC_F_WRITE}};
            drv_post(&d, 0, 128, r1, 3);
            drv_post(&d, 0, 128, r2, 3);
            drv_kick(&d, 0);
        } else if (hw->ops == &fake_vcons) {
            /* Receive buffers posted; more output than the console holds: a chain held. */
            d.v = &container_of(hw, struct f_vcons, hw)->vc.vdev;
            drv_up(&d, ev, 32);
            for (unsigned i = 0; i < 4; i++) {
                const uint64_t seg[1][3] = {{BUF(dev) + 0x100 * i, 0x100, VIRTQ_DESC_F_WRITE}};
                drv_post(&d, VIRTIO_CONSOLE_RX, 32, seg, 1);
            }
            drv_kick(&d, VIRTIO_CONSOLE_RX);
            memset(ram->host + BUF(dev) + 0x1000, 'x', 2 * VM_CONSOLE_BUFFER);
            const uint64_t out[1][3] = {{BUF(dev) + 0x1000, 2 * VM_CONSOLE_BUFFER, 0}};
            drv_post(&d, VIRTIO_CONSOLE_TX, 32, out, 1);
            drv_kick(&d, VIRTIO_CONSOLE_TX);
            FUZZ_CHECK(container_of(hw, struct f_vcons, hw)->vc.tx_held);
        } else if (hw->ops == &fake_testdev) {
            /* A copy done with its vector masked (pending in the PBA), the registers set for
             * the next, and its doorbell rung but not yet served when the VM paused. */
            struct testdev *td = &container_of(hw, struct f_testdev, hw)->td;
            const uint64_t regs[][3] = {
                {TESTDEV_REG_SRC, BUF(dev), 8}, {TESTDEV_REG_DST, BUF(dev) + 0x100, 8},
                {TESTDEV_REG_LEN, 0x40, 4},     {TESTDEV_REG_SCRATCH, 0x5eed, 4},
                {TESTDEV_REG_DOORBELL, 1, 4},
            };
            pci_config_write(&td->pdev, td->pdev.msix.cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE,
                             2);
            for (unsigned i = 0; i < ARRAY_SIZE(regs); i++) {
                uint64_t v = regs[i][1];
                FUZZ_CHECK(bus_dispatch(&m->mmio, td->bar_addr + regs[i][0], &v,
                                        (unsigned)regs[i][2], true) == 0);
            }
            event_base_loop(m->base, EVLOOP_NONBLOCK);
            FUZZ_CHECK(td->status == TESTDEV_ST_DONE && pci_msix_pending(&td->pdev, 0));
            uint64_t v = BUF(dev) + 0x200;
            FUZZ_CHECK(bus_dispatch(&m->mmio, td->bar_addr + TESTDEV_REG_DST, &v, 8, true) == 0);
            v = 1;
            FUZZ_CHECK(bus_dispatch(&m->mmio, td->bar_addr + TESTDEV_REG_DOORBELL, &v, 4, true) ==
                       0);
            testdev_pause(td);
            FUZZ_CHECK(td->pending);
        } else if (hw->ops == &fake_net) {
            /* MRG_RXBUF, receive buffers posted, a frame received, one sent. */
            struct virtio_net *net = &container_of(hw, struct f_net, hw)->net;
            d.v = &net->vdev;
            drv_up(&d, ev | 1ULL << VIRTIO_NET_F_MRG_RXBUF, 32);
            for (unsigned i = 0; i < 4; i++) {
                const uint64_t seg[1][3] = {{BUF(dev) + 0x800 * i, 0x800, VIRTQ_DESC_F_WRITE}};
                drv_post(&d, VIRTIO_NET_RX, 32, seg, 1);
            }
            drv_kick(&d, VIRTIO_NET_RX);
            uint8_t frame[60];
            memset(frame, 0xff, sizeof(frame));
            FUZZ_CHECK(virtio_net_receive(net, frame, sizeof(frame)) == 1);
            memset(ram->host + BUF(dev) + 0x3000, 0, 12 + 60);
            const uint64_t out[1][3] = {{BUF(dev) + 0x3000, 12 + 60, 0}};
            drv_post(&d, VIRTIO_NET_TX, 32, out, 1);
            drv_kick(&d, VIRTIO_NET_TX);
        }
    }
}

/* ---- whole state files ---- */

struct seed {
    struct vm_config cfg;
    bool fpu, no_pit, drive, event_idx;
    struct machine *m;
};

static void fill(struct state_out *out, void *ctx)
{
    struct seed *s = ctx;
    struct x86_vm_state vs;
    struct x86_vcpu_state *st = malloc(sizeof(*st));

    FUZZ_CHECK(st);
    state_put_string(out, "petrel-version", PETREL_VERSION);
    snapshot_config_put(&s->cfg, "/var/lib/petrel/snaps/seed/mem", out);
    make_vm(&vs, !s->no_pit);
    state_begin(out, "kvm", X86_VM_STATE_COMPATIBLE);
    x86_vm_state_put(&vs, out);
    state_end(out);
    state_begin(out, "vcpus", "petrel,vcpus-v1");
    for (unsigned i = 0; i < s->cfg.cpus; i++) {
        char name[16];
        snprintf(name, sizeof(name), "vcpu%u", i);
        make_vcpu(st, i, s->fpu);
        state_begin(out, name, X86_VCPU_STATE_COMPATIBLE);
        x86_vcpu_state_put(st, out);
        state_end(out);
    }
    state_end(out);
    state_begin(out, "devices", "petrel,devices-v1");
    if (!out->err)
        out->err = hwdev_list_save(&s->m->devices, out);
    state_end(out);
    free(st);
}

/* The state file of s's machine (malloc()ed), its devices driven or as they were made. */
static void *make_state(struct seed *s, int *disks, size_t *len)
{
    struct errbuf eb = {{0}};
    struct ram ram;
    struct machine m;
    void *tree;

    FUZZ_CHECK(ram_init(&ram, &s->cfg) == 0);
    if (machine_init(&m, &s->cfg, &ram, disks, &eb)) {
        fprintf(stderr, "fuzz_snapshot_seeds: %s\n", eb.msg);
        abort();
    }
    if (s->drive)
        drive_devices(&m, &ram, s->event_idx);
    s->m = &m;
    if (snapshot_build(fill, s, &tree, len, &eb)) {
        fprintf(stderr, "fuzz_snapshot_seeds: %s\n", eb.msg);
        abort();
    }
    machine_destroy(&m);
    ram_destroy(&ram);
    return tree;
}

/* ---- near misses ---- */

/* A copy of tree with room to edit (fdt_open_into), for edit_done(). */
static void *edit_begin(const void *tree, size_t len)
{
    void *e = malloc(len + 4096);
    FUZZ_CHECK(e && fdt_open_into(tree, e, (int)(len + 4096)) == 0);
    return e;
}

static void edit_done(const char *name, void *e)
{
    FUZZ_CHECK(fdt_pack(e) == 0);
    write_seed(name, e, fdt_totalsize(e));
    free(e);
}

static int node(void *e, const char *path)
{
    int off = fdt_path_offset(e, path);
    if (off < 0)
        fprintf(stderr, "fuzz_snapshot_seeds: no node %s\n", path);
    FUZZ_CHECK(off >= 0);
    return off;
}

static void edit_u32(const char *name, const void *tree, size_t len, const char *path,
                     const char *prop, uint32_t v)
{
    void *e = edit_begin(tree, len);
    FUZZ_CHECK(fdt_setprop_u32(e, node(e, path), prop, v) == 0);
    edit_done(name, e);
}

static void edit_u64(const char *name, const void *tree, size_t len, const char *path,
                     const char *prop, uint64_t v)
{
    void *e = edit_begin(tree, len);
    FUZZ_CHECK(fdt_setprop_u64(e, node(e, path), prop, v) == 0);
    edit_done(name, e);
}

static void edit_string(const char *name, const void *tree, size_t len, const char *path,
                        const char *prop, const char *v)
{
    void *e = edit_begin(tree, len);
    FUZZ_CHECK(fdt_setprop_string(e, node(e, path), prop, v) == 0);
    edit_done(name, e);
}

static void near_misses(const void *busy, size_t len)
{
    uint8_t *b = malloc(len);
    FUZZ_CHECK(b);

    /* Truncated anywhere, and a header that lies. */
    write_seed("truncated-header", busy, 20);
    write_seed("truncated-half", busy, len / 2);
    write_seed("truncated-last-byte", busy, len - 1);
    memcpy(b, busy, len);
    b[0] ^= 0xff;
    write_seed("bad-magic", b, len);
    memcpy(b, busy, len);
    b[len / 3] ^= 0x55;
    write_seed("bit-flip", b, len);
    memcpy(b, busy, len);
    fdt_set_boot_cpuid_phys(b, 1);
    write_seed("busy-zero-ram", b, len);
    free(b);

    /* Other formats and versions. */
    edit_string("other-format", busy, len, "/", "compatible", "petrel,snapshot-v2");
    edit_string("other-vcpu-version", busy, len, "/vcpus/vcpu0", "compatible",
                "petrel,x86-vcpu-v2");
    edit_string("other-uart-version", busy, len, "/devices/com1", "compatible",
                "petrel,uart8250-v9");
    /* The configuration. */
    edit_u32("cpus-more-than-nodes", busy, len, "/config", "cpus", 3);
    edit_u32("cpus-fewer-than-nodes", busy, len, "/config", "cpus", 1);
    edit_u32("cpus-zero", busy, len, "/config", "cpus", 0);
    edit_u64("memory-odd", busy, len, "/config", "memory", 64 * MiB + 1);
    edit_u32("drives-too-many", busy, len, "/config", "drives", 17);
    /* The KVM state. */
    edit_u32("msr-count-over", busy, len, "/vcpus/vcpu0", "msr-count", X86_STATE_MAX_MSRS + 1);
    edit_u32("xsave-size-small", busy, len, "/vcpus/vcpu1", "xsave-size", 100);
    edit_u32("segment-dpl-4", busy, len, "/vcpus/vcpu0/cs", "dpl", 4);
    edit_u32("pit-count-over", busy, len, "/kvm/pit/channel0", "count", 0x10001);
    void *e = edit_begin(busy, len);
    int cpu = node(e, "/vcpus/vcpu1");
    int plen;
    uint32_t *cpuid = fdt_getprop_w(e, cpu, "cpuid", &plen);
    FUZZ_CHECK(cpuid && plen >= 28);
    cpuid[4] = cpu_to_fdt32(0x756e6547); /* leaf 0's EBX, ECX, EDX: "GenuineIntel" */
    cpuid[5] = cpu_to_fdt32(0x6c65746e);
    cpuid[6] = cpu_to_fdt32(0x49656e69);
    edit_done("intel-guest", e);
    e = edit_begin(busy, len);
    FUZZ_CHECK(fdt_delprop(e, node(e, "/vcpus/vcpu0"), "lapic") == 0);
    edit_done("no-lapic", e);
    /* Drives. */
    edit_u64("drive-grew", busy, len, "/devices/vda", "capacity", 2 * FUZZ_DISK_SECTORS);
    edit_string("drive-relative-path", busy, len, "/devices/vda", "path", "disk0.img");
    edit_u32("drive-now-read-only", busy, len, "/config/drive0", "ro", 1);
    /* Devices. */
    e = edit_begin(busy, len);
    int com2 = fdt_add_subnode(e, node(e, "/devices"), "com2");
    FUZZ_CHECK(com2 >= 0 && fdt_setprop_string(e, com2, "compatible", "petrel,uart8250-v1") == 0);
    edit_done("unknown-device", e);
    edit_u32("uart-rx-count-over", busy, len, "/devices/com1", "rx-count", 17);
    edit_u32("i8042-pending-bad", busy, len, "/devices/i8042", "pending", 0x12);
    edit_u32("rtc-weekday-7", busy, len, "/devices/rtc", "weekday-delta", 7);
    edit_u32("queue-size-3", busy, len, "/devices/rng/virtio/queue0", "size", 3);
    edit_u32("queue-in-flight", busy, len, "/devices/vda/virtio/queue0", "last-avail-idx", 3);
    edit_u32("queue-broken", busy, len, "/devices/rng/virtio/queue0", "broken", 1);
    edit_u64("queue-outside-ram", busy, len, "/devices/rng/virtio/queue0", "used-addr",
             0xfffffffffff000);
    edit_u32("vcons-tx-head-over", busy, len, "/devices/vcons", "tx-head", 40);
    edit_u32("msix-vector-over", busy, len, "/devices/rng/virtio", "config-vector", 9);
    edit_u32("testdev-status-bits", busy, len, "/devices/testdev", "status", 4);
    edit_u32("testdev-error-code", busy, len, "/devices/testdev", "error", TESTDEV_ERR_MAX + 1);
    e = edit_begin(busy, len);
    FUZZ_CHECK(fdt_delprop(e, node(e, "/config"), "testdev") == 0);
    edit_done("testdev-not-in-config", e);
}

int main(int argc, char **argv)
{
    static int disks[VIRTIO_BLK_MAX_DRIVES];
    struct seed s;
    size_t len;
    void *tree;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    out_dir = argv[1];
    if (mkdir(out_dir, 0755) < 0 && errno != EEXIST) {
        perror(out_dir);
        return 1;
    }
    DIR *dir = opendir(out_dir);
    for (struct dirent *de; dir && (de = readdir(dir));) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", out_dir, de->d_name);
        if (de->d_name[0] != '.')
            unlink(path);
    }
    if (dir)
        closedir(dir);
    fuzz_disks_reset(disks);

    /* The kit's counter after boot: one vCPU, a drive no driver touched. */
    s = (struct seed){.cfg = {.cpus = 1, .memory = 64 * MiB, .nr_drives = 1}};
    s.cfg.kernel_path = "/usr/lib/petrel/kit/counter.bzImage";
    s.cfg.drives[0].path = "/var/lib/petrel/disk0.img";
    tree = make_state(&s, disks, &len);
    write_seed("idle", tree, len);
    free(tree);

    /* Two vCPUs, every device in use: rng, two drives (one read-only), virtio-console, a NIC. */
    s = (struct seed){.cfg = {.cpus = 2,
                              .memory = 128 * MiB,
                              .rng = true,
                              .console_virtio = true,
                              .testdev = true,
                              .nr_drives = 2},
                      .drive = true};
    s.cfg.kernel_path = "/boot/vmlinuz";
    s.cfg.drives[0].path = "/var/lib/petrel/disk0.img";
    s.cfg.drives[1] =
        (struct virtio_blk_spec){.path = "/var/lib/petrel/data.img", .ro = true, .id = "data"};
    struct errbuf neb = {{0}};
    FUZZ_CHECK(net_spec_parse("user,hostfwd=tcp:127.0.0.1:2222-:22", &s.cfg.nets[0], &neb) == 0);
    s.cfg.nr_nets = 1;
    void *busy = make_state(&s, disks, &len);
    write_seed("busy", busy, len);
    near_misses(busy, len);
    free(busy);

    /* No XSAVE, no PIT, EVENT_IDX on every queue, a serial console. */
    s = (struct seed){.cfg = {.cpus = 1, .memory = 32 * MiB, .rng = true, .nr_drives = 1},
                      .fpu = true,
                      .no_pit = true,
                      .drive = true,
                      .event_idx = true};
    s.cfg.kernel_path = "";
    s.cfg.drives[0].path = "/dev/vdb";
    tree = make_state(&s, disks, &len);
    write_seed("fpu-event-idx", tree, len);
    free(tree);
    return 0;
}
