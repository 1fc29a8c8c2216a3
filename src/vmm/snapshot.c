/*
 * Snapshots of a paused VM (docs/snapshot-format.md). The VM stays paused
 * from the request to the answer; nothing on the loop waits for the disk:
 *
 *   1. a worker drains the devices' host I/O (virtio-blk requests in flight
 *      complete into guest memory) and writes guest RAM to a temporary memory
 *      file beside the final one (gm_save(): holes for untouched pages, then
 *      fdatasync);
 *   2. the loop reads every vCPU's and the VM's KVM state and every device's
 *      state into the state tree;
 *   3. a worker writes the state to a temporary file and syncs it, removes an
 *      old state file of the same name, renames the memory file and then the
 *      state file into place, and syncs the directories.
 *
 * A failure at any step removes the temporary files and answers with the
 * reason; the VM stays paused and can be resumed. The state file is the
 * commit point: removed before the memory file it names is replaced and put
 * back only after, so a crash never leaves a state file beside a memory file
 * of another snapshot (only, at worst, a memory file without one).
 */
#include "petrel/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libfdt.h>

#include "petrel/job.h"
#include "petrel/vm.h"
#include "petrel/x86_cpu.h"
#include "petrel/x86_state.h"

struct vm_snap {
    struct job job;
    struct vm *vm;
    char state_path[PATH_MAX], mem_path[PATH_MAX], mem_tmp[PATH_MAX], state_tmp[PATH_MAX];
    void *fdt; /* the state tree (step 2) */
    size_t len;
    int err;
    struct errbuf eb;
    vm_done_fn *done;
    void *ctx;
};

/* Step 1, on a worker: the devices drained; RAM into the temporary memory file. */
static void snap_write_memory(struct job *job)
{
    struct vm_snap *s = container_of(job, struct vm_snap, job);

    hwdev_list_drain(&s->vm->devices);
    int fd = open(s->mem_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        s->err = err_set(&s->eb, -errno, "cannot create %s: %s", s->mem_tmp, strerror(errno));
        return;
    }
    s->err = gm_save(&s->vm->mem, fd, s->mem_tmp, NULL, &s->eb);
    if (close(fd) < 0 && !s->err)
        s->err = err_set(&s->eb, -errno, "cannot write %s: %s", s->mem_tmp, strerror(errno));
}

/* The KVM state of the VM and of each vCPU, as nodes "kvm" and "vcpus/vcpuN". */
static void snap_put_kvm(struct vm *vm, struct state_out *out, struct errbuf *eb)
{
    struct x86_vm_state vs;
    if (x86_vm_state_get(vm->vm_fd, &vs, eb)) {
        out->err = -EIO;
        return;
    }
    state_begin(out, "kvm", X86_VM_STATE_COMPATIBLE);
    x86_vm_state_put(&vs, out);
    state_end(out);

    struct x86_vcpu_state *st = malloc(sizeof(*st));
    if (!st) {
        out->err = -ENOMEM;
        return;
    }
    state_begin(out, "vcpus", "petrel,vcpus-v1");
    for (unsigned i = 0; i < vm->nr_vcpus && !out->err; i++) {
        char name[16];
        snprintf(name, sizeof(name), "vcpu%u", i);
        x86_cpuid_patch(vm->cpuid, i, vm->nr_vcpus); /* the table vCPU i was given */
        if (x86_vcpu_state_get(vm->kvm_fd, vm->vcpus[i].fd, vm->cpuid, st, eb)) {
            out->err = -EIO;
            break;
        }
        state_begin(out, name, X86_VCPU_STATE_COMPATIBLE);
        x86_vcpu_state_put(st, out);
        state_end(out);
    }
    state_end(out);
    free(st);
}

/* Fills the state tree's root (snapshot_build()). */
static void snap_fill(struct state_out *out, void *ctx)
{
    struct vm_snap *s = ctx;
    struct vm *vm = s->vm;

    state_put_string(out, "petrel-version", PETREL_VERSION);
    snapshot_config_put(&vm->cfg, s->mem_path, out);
    snap_put_kvm(vm, out, &s->eb);
    state_begin(out, "devices", "petrel,devices-v1");
    if (!out->err)
        out->err = hwdev_list_save(&vm->devices, out);
    state_end(out);
}

/* Step 3, on a worker: the state file, then both names in place, the state file last. */
static void snap_write_state(struct job *job)
{
    struct vm_snap *s = container_of(job, struct vm_snap, job);

    s->err = snapshot_write_file(s->state_tmp, s->fdt, s->len, &s->eb);
    if (s->err)
        return;
    if ((unlink(s->state_path) < 0 && errno != ENOENT) ||
        (s->err = snapshot_sync_dir(s->state_path, &s->eb))) {
        if (!s->err)
            s->err =
                err_set(&s->eb, -errno, "cannot replace %s: %s", s->state_path, strerror(errno));
        return;
    }
    if (rename(s->mem_tmp, s->mem_path) < 0) {
        s->err = err_set(&s->eb, -errno, "cannot rename %s to %s: %s", s->mem_tmp, s->mem_path,
                         strerror(errno));
        return;
    }
    s->mem_tmp[0] = '\0';
    s->err = snapshot_sync_dir(s->mem_path, &s->eb);
    if (!s->err && rename(s->state_tmp, s->state_path) < 0)
        s->err = err_set(&s->eb, -errno, "cannot rename %s to %s: %s", s->state_tmp, s->state_path,
                         strerror(errno));
    if (!s->err) {
        s->state_tmp[0] = '\0';
        s->err = snapshot_sync_dir(s->state_path, &s->eb);
    }
}

static void snap_finish(struct vm_snap *s)
{
    struct vm *vm = s->vm;
    if (s->mem_tmp[0])
        unlink(s->mem_tmp);
    if (s->state_tmp[0])
        unlink(s->state_tmp);
    vm->snapshot = NULL;
    s->done(s->ctx, s->err, s->err ? s->eb.msg : NULL);
    free(s->fdt);
    free(s);
}

static void snap_written(struct job *job)
{
    snap_finish(container_of(job, struct vm_snap, job));
}

/* Step 2, on the loop: the state, with the memory file's identity. */
static void snap_memory_written(struct job *job)
{
    struct vm_snap *s = container_of(job, struct vm_snap, job);

    if (!s->err) {
        struct errbuf eb = {0};
        s->err = snapshot_build(snap_fill, s, &s->fdt, &s->len, &eb);
        if (s->err && !s->eb.msg[0])
            s->eb = eb;
    }
    /*
     * Once job_start() succeeds, s belongs to the worker until snap_written() runs:
     * it may fail and set s->err before job_start() returns, so nothing here may read
     * s->err (or finish s) after that. Reading it, this path freed s under a running
     * job when a full filesystem failed the state file at once, and the job's
     * completion then ran on freed memory (SIGSEGV).
     */
    if (!s->err) {
        int ret = job_start(&s->job, s->vm->base, snap_write_state, snap_written);
        if (!ret)
            return;
        s->err = ret;
    }
    if (!s->eb.msg[0])
        err_set(&s->eb, s->err, "cannot write the snapshot: %s", strerror(-s->err));
    snap_finish(s);
}

/* path into buf made absolute: the files are named in the state file and in messages. */
static int snap_path(char *buf, const char *path)
{
    if (!path || !path[0])
        return -EINVAL;
    if (path[0] == '/')
        return snprintf(buf, PATH_MAX, "%s", path) < PATH_MAX ? 0 : -ENAMETOOLONG;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd)))
        return -errno;
    return snprintf(buf, PATH_MAX, "%s/%s", cwd, path) < PATH_MAX ? 0 : -ENAMETOOLONG;
}

void vm_snapshot(struct vm *vm, const char *state_path, const char *mem_path, vm_done_fn *done,
                 void *ctx)
{
    if (vm->state != VM_PAUSED) {
        done(ctx, -EBUSY,
             vm->state == VM_STOPPING ? "the VM is stopping"
                                      : "the VM must be Paused for a snapshot (pause it first)");
        return;
    }
    if (vm->snapshot) {
        done(ctx, -EBUSY, "a snapshot is being written");
        return;
    }
    struct vm_snap *s = calloc(1, sizeof(*s));
    if (!s) {
        done(ctx, -ENOMEM, "out of memory");
        return;
    }
    s->vm = vm;
    s->done = done;
    s->ctx = ctx;
    if (snap_path(s->state_path, state_path) || snap_path(s->mem_path, mem_path) ||
        snprintf(s->mem_tmp, sizeof(s->mem_tmp), "%s.tmp-%d", s->mem_path, (int)getpid()) >=
            (int)sizeof(s->mem_tmp) ||
        snprintf(s->state_tmp, sizeof(s->state_tmp), "%s.tmp-%d", s->state_path, (int)getpid()) >=
            (int)sizeof(s->state_tmp)) {
        s->mem_tmp[0] = s->state_tmp[0] = '\0';
        s->err = err_set(&s->eb, -EINVAL, "the snapshot's paths are empty or too long");
        snap_finish(s);
        return;
    }
    if (!strcmp(s->state_path, s->mem_path)) {
        s->mem_tmp[0] = s->state_tmp[0] = '\0';
        s->err = err_set(&s->eb, -EINVAL, "the state file and the memory file are one path");
        snap_finish(s);
        return;
    }
    vm->snapshot = s;
    int ret = job_start(&s->job, vm->base, snap_write_memory, snap_memory_written);
    if (ret) { /* then no worker runs: s is the loop's alone again */
        s->mem_tmp[0] = s->state_tmp[0] = '\0';
        s->err = err_set(&s->eb, ret, "cannot start writing the snapshot: %s", strerror(-ret));
        snap_finish(s);
    }
}

/* For teardown: a snapshot still being written is waited for, then dropped unanswered. */
void vm_snapshot_cancel(struct vm *vm)
{
    struct vm_snap *s = vm->snapshot;
    if (!s)
        return;
    job_cancel(&s->job);
    if (s->mem_tmp[0])
        unlink(s->mem_tmp);
    if (s->state_tmp[0])
        unlink(s->state_tmp);
    free(s->fdt);
    free(s);
    vm->snapshot = NULL;
}

/* ---- restoring ---- */

/* The root of the state tree a restore reads (vm_config.restore). */
static struct state_in snap_root(struct vm *vm, struct errbuf *eb)
{
    return (struct state_in){.fdt = vm->cfg.restore, .node = 0, .eb = eb};
}

int vm_restore_memory(struct vm *vm, struct errbuf *eb)
{
    const char *path = vm->cfg.restore_mem_path;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return err_set(eb, -errno, "cannot open the memory file %s: %s", path, strerror(errno));
    /* gm_init_file() checks that the file is exactly the configuration's RAM. */
    int ret = gm_init_file(&vm->mem, vm->cfg.memory, fd, path, eb);
    close(fd);
    return ret;
}

/*
 * The VM-wide KVM state (clock, irqchip, PIT), after guest memory and before any
 * vCPU's (x86_state.h gives the order): how far the clock moved on is what
 * each vCPU's TSC moves on by.
 */
int vm_restore_kvm(struct vm *vm, struct errbuf *eb)
{
    struct state_in root = snap_root(vm, eb), kvm;
    struct x86_vm_state vs;

    if (state_open(&root, "kvm", X86_VM_STATE_COMPATIBLE, &kvm))
        return kvm.err;
    int ret = x86_vm_state_take(&vs, &kvm);
    if (!ret)
        ret = x86_vm_state_set(vm->vm_fd, &vs,
                               vm->cfg.restore_clock_frozen ? X86_CLOCK_FROZEN : X86_CLOCK_CATCH_UP,
                               eb);
    if (!ret)
        ret = x86_vm_clock_advanced(vm->vm_fd, &vs, &vm->restore_advance_ns, eb);
    return ret;
}

int vm_restore_vcpu(struct vm *vm, unsigned i, struct errbuf *eb)
{
    struct state_in root = snap_root(vm, eb), vcpus, in;
    char name[16];

    snprintf(name, sizeof(name), "vcpu%u", i);
    if (state_open(&root, "vcpus", "petrel,vcpus-v1", &vcpus))
        return vcpus.err;
    if (state_open(&vcpus, name, X86_VCPU_STATE_COMPATIBLE, &in))
        return in.err;
    struct x86_vcpu_state *st = malloc(sizeof(*st));
    if (!st)
        return err_set(eb, -ENOMEM, "out of memory");
    int ret = x86_vcpu_state_take(st, &in);
    if (!ret)
        ret = x86_cpuid_check(&st->cpuid.hdr, vm->cpuid, eb);
    if (!ret) {
        x86_vcpu_state_advance_tsc(st, vm->restore_advance_ns);
        ret = x86_vcpu_state_set(vm->vcpus[i].fd, st, eb);
    }
    /* After the last check against this host: the guest's own table is the VM's from now
     * on (a snapshot of the restored VM gives each vCPU its APIC IDs from it again). */
    if (!ret && i + 1 == vm->cfg.cpus) {
        size_t size =
            sizeof(struct kvm_cpuid2) + st->cpuid.hdr.nent * sizeof(struct kvm_cpuid_entry2);
        struct kvm_cpuid2 *mine = malloc(size);
        if (mine) {
            memcpy(mine, &st->cpuid.hdr, size);
            free(vm->cpuid);
            vm->cpuid = mine;
        } else {
            ret = err_set(eb, -ENOMEM, "out of memory");
        }
    }
    free(st);
    return ret;
}

int vm_restore_devices(struct vm *vm, struct errbuf *eb)
{
    struct state_in root = snap_root(vm, eb), devices, vcpus;

    /* A state file with more vCPUs than its configuration says is not this machine's. */
    if (state_open(&root, "vcpus", "petrel,vcpus-v1", &vcpus))
        return vcpus.err;
    unsigned n = 0;
    int sub;
    fdt_for_each_subnode(sub, vcpus.fdt, vcpus.node) n++;
    if (n != vm->nr_vcpus)
        return state_invalid(&vcpus, "holds %u vCPUs, the configuration %u", n, vm->nr_vcpus);
    if (state_open(&root, "devices", "petrel,devices-v1", &devices))
        return devices.err;
    int ret = hwdev_list_restore(&vm->devices, &devices);
    /* Before each vCPU's first run: the guest's watchdogs must not take the gap for a hang. */
    for (unsigned i = 0; i < vm->nr_vcpus && !ret; i++) {
        ret = x86_vcpu_kvmclock_ctrl(vm->vcpus[i].fd);
        if (ret)
            err_set(eb, ret, "KVMCLOCK_CTRL on vCPU %u: %s", i, strerror(-ret));
    }
    return ret;
}
