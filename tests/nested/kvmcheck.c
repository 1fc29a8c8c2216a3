/* tests/nested/selftest: the smallest proof that /dev/kvm inside L1 runs guest code.
 * Opens /dev/kvm, checks the API version and two capabilities, creates a VM with one
 * vCPU in real mode, runs `mov al, 0x2a; out 0xf4, al; hlt` and expects the port I/O exit
 * and then the HLT exit. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}
#define DIE(m)                                                                                     \
    do {                                                                                           \
        perror(m);                                                                                 \
        return 1;                                                                                  \
    } while (0)

int main(void)
{
    double t0 = now();
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        DIE("open /dev/kvm");
    int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
    printf("KVM_GET_API_VERSION = %d\n", api);
    if (api != 12)
        return 2;
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0)
        DIE("KVM_CREATE_VM");
    int cap_ie = ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_IMMEDIATE_EXIT);
    int cap_irqchip = ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_IRQCHIP);
    printf("KVM_CAP_IMMEDIATE_EXIT = %d\n", cap_ie);
    printf("KVM_CAP_IRQCHIP = %d\n", cap_irqchip);
    if (cap_ie <= 0 || cap_irqchip <= 0)
        return 2;
    size_t memsz = 0x10000;
    unsigned char *mem =
        mmap(NULL, memsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        DIE("mmap");
    /* at 0x1000: mov al, 0x2a; out 0xf4, al; hlt */
    const unsigned char code[] = {0xb0, 0x2a, 0xe6, 0xf4, 0xf4};
    memcpy(mem + 0x1000, code, sizeof code);
    struct kvm_userspace_memory_region r = {.slot = 0,
                                            .guest_phys_addr = 0,
                                            .memory_size = memsz,
                                            .userspace_addr = (unsigned long)mem};
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0)
        DIE("KVM_SET_USER_MEMORY_REGION");
    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0)
        DIE("KVM_CREATE_VCPU");
    int runsz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    struct kvm_run *run = mmap(NULL, runsz, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED)
        DIE("mmap kvm_run");
    struct kvm_sregs s;
    if (ioctl(vcpu, KVM_GET_SREGS, &s) < 0)
        DIE("KVM_GET_SREGS");
    s.cs.base = 0;
    s.cs.selector = 0;
    if (ioctl(vcpu, KVM_SET_SREGS, &s) < 0)
        DIE("KVM_SET_SREGS");
    struct kvm_regs g = {.rip = 0x1000, .rflags = 2};
    if (ioctl(vcpu, KVM_SET_REGS, &g) < 0)
        DIE("KVM_SET_REGS");
    for (int i = 0; i < 4; i++) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0)
            DIE("KVM_RUN");
        if (run->exit_reason == KVM_EXIT_IO) {
            unsigned char v = *((unsigned char *)run + run->io.data_offset);
            printf("KVM_EXIT_IO: %s port 0x%x size %d value 0x%x\n",
                   run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in", run->io.port, run->io.size,
                   v);
            if (run->io.port != 0xf4 || v != 0x2a)
                return 3;
            continue;
        }
        if (run->exit_reason == KVM_EXIT_HLT) {
            printf("KVM_EXIT_HLT: guest ran to hlt; %.3f ms from open(/dev/kvm)\n",
                   (now() - t0) * 1e3);
            return 0;
        }
        printf("unexpected exit reason %d\n", run->exit_reason);
        return 4;
    }
    return 5;
}
