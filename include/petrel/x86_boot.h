/*
 * The Linux x86 boot protocol (Documentation/arch/x86/boot.rst): bzImage
 * header parsing, the guest-physical boot layout, the zero page (boot_params)
 * with its e820 map, and loading the kernel, command line and initrd.
 *
 * petrel uses the 64-bit entry point: the BSP starts in long mode, with RSI
 * pointing at the zero page and identity page tables covering the low 4 GiB.
 * It loads two kinds of kernel:
 * - a bzImage: the protected-mode kernel goes to 1 MiB and the BSP starts at
 *   load address + 0x200, in the kernel's own decompressor;
 * - an ELF vmlinux (the uncompressed kernel, as Firecracker loads it): each
 *   PT_LOAD segment goes to its physical address and the BSP starts at the
 *   ELF entry (startup_64), skipping the decompressor. There is no setup
 *   header in the file, so petrel writes one (protocol 2.15) in the zero page.
 */
#ifndef PETREL_X86_BOOT_H
#define PETREL_X86_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "petrel/guest_mem.h"
#include "petrel/util.h"

/* Guest-physical boot layout (all below the EBDA at 0x9fc00). */
#define BOOT_GDT_GPA       0x500
#define BOOT_IDT_GPA       0x540 /* after the 6-entry GDT (0x500-0x52f) */
#define BOOT_ZERO_PAGE_GPA 0x7000
#define BOOT_STACK_GPA     0x8ff0
#define BOOT_PML4_GPA      0x9000
#define BOOT_PDPT_GPA      0xa000
#define BOOT_PD_GPA        0xb000 /* 4 pages: 2 MiB pages for the low 4 GiB */
#define BOOT_PD_PAGES      4
#define BOOT_CMDLINE_GPA   0x20000
#define BOOT_CMDLINE_MAX   0x10000 /* the room petrel gives the command line */
#define BOOT_EBDA_GPA      0x9fc00
#define BOOT_BIOS_GPA      0xe0000 /* reserved: the firmware tables (ACPI, MP) */
#define BOOT_KERNEL_GPA    0x100000

#define BOOT_ENTRY64_OFFSET 0x200

/* GDT selectors of the boot GDT (the same as Linux's __BOOT_CS/__BOOT_DS). */
#define BOOT_CS_SEL  0x10
#define BOOT_DS_SEL  0x18
#define BOOT_TSS_SEL 0x20

/* boot_params offsets used by petrel. */
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE  0x0c4
#define BP_EXT_CMD_LINE_PTR  0x0c8
#define BP_E820_ENTRIES      0x1e8
#define BP_HDR               0x1f1 /* the setup header starts here */
#define BP_VID_MODE          0x1fa
#define BP_BOOT_FLAG         0x1fe
#define BP_JUMP              0x200
#define BP_HEADER            0x202
#define BP_VERSION           0x206
#define BP_TYPE_OF_LOADER    0x210
#define BP_LOADFLAGS         0x211
#define BP_CODE32_START      0x214
#define BP_RAMDISK_IMAGE     0x218
#define BP_RAMDISK_SIZE      0x21c
#define BP_HEAP_END_PTR      0x224
#define BP_CMD_LINE_PTR      0x228
#define BP_INITRD_ADDR_MAX   0x22c
#define BP_KERNEL_ALIGNMENT  0x230
#define BP_RELOCATABLE       0x234
#define BP_XLOADFLAGS        0x236
#define BP_CMDLINE_SIZE      0x238
#define BP_PAYLOAD_OFFSET    0x248
#define BP_PAYLOAD_LENGTH    0x24c
#define BP_PREF_ADDRESS      0x258
#define BP_INIT_SIZE         0x260
#define BP_E820_TABLE        0x2d0
#define BP_E820_MAX          128
#define BP_SIZE              4096

#define BZ_BOOT_FLAG     0xaa55
#define BZ_MAGIC         0x53726448 /* "HdrS" */
#define BZ_LOADED_HIGH   0x01
#define BZ_CAN_USE_HEAP  0x80
#define BZ_XLF_KERNEL_64 0x01
#define BZ_MIN_VERSION   0x020c /* 2.12: the first protocol with XLF_KERNEL_64 */
#define BZ_PREF_VERSION  0x020a /* 2.10: pref_address, init_size */

#define E820_RAM      1
#define E820_RESERVED 2

struct e820_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};

/* What petrel needs to know of a bzImage, validated. */
struct bzimage {
    uint16_t version;
    unsigned setup_sects;
    size_t setup_size;    /* boot sector + setup, in the file */
    size_t hdr_end;       /* end of the setup header in the file */
    const uint8_t *pm;    /* protected-mode kernel, inside the caller's image */
    size_t pm_size;       /* its bytes in the file */
    uint64_t pm_mem;      /* and in memory: syssize's paragraphs if the last is partial */
    uint64_t init_size;   /* memory the kernel needs from its load address, at most to 4 GiB */
    uint32_t cmdline_max; /* longest command line, without the NUL */
    uint32_t initrd_addr_max;
    bool relocatable;
    uint64_t pref_address;  /* where the kernel runs best, and the vmlinux's first address */
    uint32_t hdr_init_size; /* init_size as the header says it */
};

/*
 * Validates a bzImage held in img[0, len). The file may end inside syssize's
 * last 16-byte paragraph (pm_mem then covers the rest of it, to be zeroed), no
 * earlier; the kernel's memory (init_size, raised to pm_mem) must end at or
 * below 4 GiB. On failure returns -ENOEXEC with a message saying what is
 * wrong. img must outlive bz (bz->pm points into it).
 */
int bzimage_parse(const uint8_t *img, size_t len, struct bzimage *bz, struct errbuf *eb) MUST_CHECK;

/* Fills out[] with the e820 map of gm; returns the number of entries. */
unsigned e820_build(const struct guest_mem *gm, struct e820_entry *out, unsigned max);

/*
 * A kernel reduced to what loading it needs, whatever its format: the bytes to
 * copy where, the entry point, the memory it claims, and its limits.
 */
#define KERNEL_MAX_SEGMENTS 16
#define ELF_CMDLINE_MAX     2047       /* x86 Linux's COMMAND_LINE_SIZE - 1 */
#define ELF_INITRD_ADDR_MAX 0x7fffffff /* what x86-64 kernels put in initrd_addr_max */
#define BOOT_HDR_VERSION    0x020f     /* the protocol petrel writes for a vmlinux */
#define ELF_MAGIC                                                                                  \
    "\x7f"                                                                                         \
    "ELF"

struct kernel_segment {
    uint64_t gpa;
    uint64_t offset;     /* of its bytes in the file */
    const uint8_t *data; /* the bytes in the caller's buffer, or NULL if it does not hold them */
    size_t filesz;
    uint64_t memsz; /* >= filesz; the rest is zeroed */
};

struct kernel_image {
    const char *format; /* "bzImage" or "ELF vmlinux" */
    struct kernel_segment seg[KERNEL_MAX_SEGMENTS];
    unsigned nr_seg;
    uint64_t entry;       /* where the BSP starts (guest-physical, 64-bit entry) */
    uint64_t end;         /* end of the kernel's memory; the initrd goes above it */
    uint32_t cmdline_max; /* longest command line, without the NUL */
    uint32_t initrd_addr_max;
    const uint8_t *hdr; /* a bzImage's setup header (from BP_HDR), copied to the zero page */
    size_t hdr_len;     /* 0 for a vmlinux: petrel writes the header */
};

/*
 * Validates an ELF vmlinux of file_size bytes whose first len bytes are in img
 * (the headers must be: a caller need not read a vmlinux's tens of MiB to parse
 * it): x86-64, executable, the program header table inside img, at most
 * KERNEL_MAX_SEGMENTS non-empty PT_LOAD segments inside the file, each at or
 * above 1 MiB and below 4 GiB, none overlapping, the entry inside an executable
 * one's file bytes. A segment's data points into img when img holds all of its
 * bytes, else it is NULL. -ENOEXEC with a message otherwise. img must outlive k.
 */
int vmlinux_parse(const uint8_t *img, size_t len, uint64_t file_size, struct kernel_image *k,
                  struct errbuf *eb) MUST_CHECK;

/*
 * Either format, told apart by its magic. A bzImage must be whole in img
 * (len == file_size); a vmlinux may be only its head. -ENOEXEC with a message
 * if neither.
 */
int kernel_parse(const uint8_t *img, size_t len, uint64_t file_size, struct kernel_image *k,
                 struct errbuf *eb) MUST_CHECK;

/*
 * The compressed payload of a bzImage that bzimage_parse() accepted: the
 * protected-mode kernel's bytes [payload_offset, +payload_length). -ENOENT
 * (with a message) when its header has none or it lies outside the file.
 */
int bzimage_payload(const struct bzimage *bz, const uint8_t *img, const uint8_t **payload,
                    size_t *len, struct errbuf *eb) MUST_CHECK;

/*
 * Makes k, an ELF vmlinux parsed from bz's own payload, boot as the bzImage
 * would: checks that it is the kernel that header describes (its lowest
 * segment at pref_address, its memory within init_size of it), then gives it
 * the bzImage's setup header (copied to the zero page as for the bzImage),
 * command-line and initrd limits. -ENOEXEC with a message otherwise.
 */
int bzimage_adopt_vmlinux(const struct bzimage *bz, const uint8_t *img, struct kernel_image *k,
                          struct errbuf *eb) MUST_CHECK;

/* Where and what petrel loads. initrd may be absent (initrd_size 0). */
struct boot_load {
    const char *cmdline;
    uint64_t initrd_size;
    uint64_t initrd_gpa; /* filled by x86_boot_place_initrd() */
};

/*
 * Picks the initrd's address: as high as possible below the kernel's limit and
 * the hole, above the kernel's memory. -ENOSPC (with a message) if it cannot fit.
 */
int x86_boot_place_initrd(const struct guest_mem *gm, const struct kernel_image *k,
                          struct boot_load *bl, struct errbuf *eb) MUST_CHECK;

/*
 * Copies the kernel's segments that have data and zeroes every segment's memory
 * past its file bytes, writes the command line and the zero page. The bytes of
 * segments without data and the initrd's are the caller's to copy (to seg.gpa,
 * to bl->initrd_gpa). Nothing is written unless every segment fits. 0 or -errno.
 */
int x86_boot_load(const struct guest_mem *gm, const struct kernel_image *k,
                  const struct boot_load *bl, struct errbuf *eb) MUST_CHECK;

static inline uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static inline void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
    put_le16(p, (uint16_t)v);
    put_le16(p + 2, (uint16_t)(v >> 16));
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

#endif
