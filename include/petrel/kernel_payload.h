/*
 * A bzImage's compressed payload (setup header payload_offset/payload_length,
 * boot protocol 2.08+) decompressed on the host with the distribution's
 * libraries, so that the guest boots the ELF vmlinux it carries without
 * running the kernel's own decompressor.
 *
 * The format is told by its magic, as Linux's lib/decompress.c tells it, never
 * guessed. Linux's build (arch/x86/boot/compressed/Makefile, mkpiggy.c) ends
 * every payload with the uncompressed size as a little-endian 32-bit number
 * (gzip's own ISIZE trailer; appended by size_append for the others): the
 * output must be exactly that long, and at most the caller's bound. The
 * payload is hostile input: more output than declared (a bomb), a decoder
 * that needs more memory than KPAYLOAD_MEMLIMIT, a stream that runs past its
 * deadline, a corrupt or cut stream are all refused with a message.
 */
#ifndef PETREL_KERNEL_PAYLOAD_H
#define PETREL_KERNEL_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "petrel/util.h"

#define KPAYLOAD_MAX_OUT  (512 * MiB) /* a kernel's ELF vmlinux: Debian's is ~66 MiB */
#define KPAYLOAD_MEMLIMIT (256 * MiB) /* a decoder's own memory (xz/lzma dictionary) */

enum kpayload_format {
    KPAYLOAD_GZIP,
    KPAYLOAD_BZIP2,
    KPAYLOAD_LZMA,
    KPAYLOAD_XZ,
    KPAYLOAD_LZO,
    KPAYLOAD_LZ4,
    KPAYLOAD_ZSTD,
};

struct kpayload {
    enum kpayload_format format;
    const char *name;    /* "gzip", "xz", ... */
    const uint8_t *data; /* the whole payload, its size trailer included */
    size_t len;
    uint64_t declared; /* the uncompressed size from the trailer */
};

/*
 * Identifies a payload of len bytes by its magic and reads its size trailer.
 * -ENOEXEC (unknown magic, too short) or -ENOTSUP (a format this build
 * cannot decompress), with a message. data must outlive p.
 */
int kpayload_identify(const uint8_t *data, size_t len, struct kpayload *p,
                      struct errbuf *eb) MUST_CHECK;

/*
 * Decompresses p into a new buffer (*out, free() it) of exactly p->declared
 * bytes, refusing a declared size above max_out, output beyond the declared
 * size, and a run past deadline_ns (a now_ns() time). -EFBIG (too large or a
 * bomb), -ETIMEDOUT, -ENOMEM, -EBADMSG (corrupt or truncated), with a message.
 */
int kpayload_decompress(const struct kpayload *p, uint64_t max_out, uint64_t deadline_ns,
                        uint8_t **out, size_t *out_len, struct errbuf *eb) MUST_CHECK;

#endif
