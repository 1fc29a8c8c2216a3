/*
 * A bzImage's payload decompressed on the host: identification by magic, the
 * size trailer, and one decoder per format on the distribution's library
 * (zlib, libbz2, liblzma, liblzo2, liblz4, libzstd). Every decoder writes
 * into one buffer of declared + 1 bytes, in steps of KP_STEP, checking the
 * deadline between steps: filling the extra byte is a bomb.
 */
#include "petrel/kernel_payload.h"

#include <bzlib.h>
#include <errno.h>
#include <lz4.h>
#include <lzma.h>
#include <lzo/lzo1x.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#define KP_STEP (1 * MiB) /* output between two deadline checks */

/* Linux's lib/decompress.c magics, with the bytes that pin each down further. */
static const struct {
    enum kpayload_format format;
    const char *name;
    const char *magic;
    size_t len;
} kp_magics[] = {
    {KPAYLOAD_GZIP, "gzip", "\x1f\x8b\x08", 3}, /* deflate: the only gzip method */
    {KPAYLOAD_BZIP2, "bzip2", "BZh", 3},
    {KPAYLOAD_LZMA, "lzma", "\x5d\x00\x00", 3}, /* lc=3 lp=0 pb=2, as lzma -9 writes */
    {KPAYLOAD_XZ, "xz", "\xfd\x37\x7a\x58\x5a\x00", 6},
    {KPAYLOAD_LZO, "lzo", "\x89\x4c\x5a\x4f\x00\x0d\x0a\x1a\x0a", 9}, /* lzop's file */
    {KPAYLOAD_LZ4, "lz4", "\x02\x21\x4c\x18", 4},                     /* lz4 -l: legacy */
    {KPAYLOAD_ZSTD, "zstd", "\x28\xb5\x2f\xfd", 4},
};

static uint32_t kp_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t kp_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

int kpayload_identify(const uint8_t *data, size_t len, struct kpayload *p, struct errbuf *eb)
{
    memset(p, 0, sizeof(*p));
    for (size_t i = 0; i < ARRAY_SIZE(kp_magics); i++) {
        if (len < kp_magics[i].len || memcmp(data, kp_magics[i].magic, kp_magics[i].len))
            continue;
        if (len < kp_magics[i].len + 4)
            return err_set(eb, -ENOEXEC, "the %s payload is truncated (%zu bytes)",
                           kp_magics[i].name, len);
        *p = (struct kpayload){.format = kp_magics[i].format,
                               .name = kp_magics[i].name,
                               .data = data,
                               .len = len,
                               .declared = kp_le32(data + len - 4)};
        return 0;
    }
    return err_set(eb, -ENOEXEC,
                   "the payload is in no format petrel knows (magic %02x %02x %02x %02x: not "
                   "gzip, bzip2, lzma, xz, lzo, lz4 or zstd)",
                   len > 0 ? data[0] : 0, len > 1 ? data[1] : 0, len > 2 ? data[2] : 0,
                   len > 3 ? data[3] : 0);
}

/* The output of a decoder: buf has room for cap = declared + 1 bytes. */
struct kp_out {
    const struct kpayload *p;
    uint8_t *buf;
    size_t cap;
    size_t pos;
    uint64_t deadline_ns;
    struct errbuf *eb;
};

/* The room for the next step, 0 when full; -ETIMEDOUT past the deadline. */
static int kp_step(struct kp_out *o, size_t *room)
{
    if (now_ns() > o->deadline_ns)
        return err_set(o->eb, -ETIMEDOUT,
                       "decompressing the %s payload took too long (%zu of %llu bytes)", o->p->name,
                       o->pos, (unsigned long long)o->p->declared);
    *room = o->cap - o->pos < KP_STEP ? o->cap - o->pos : KP_STEP;
    return 0;
}

static int kp_bomb(struct kp_out *o)
{
    return err_set(o->eb, -EFBIG,
                   "the %s payload decompresses to more than the %llu bytes it declares "
                   "(a decompression bomb?)",
                   o->p->name, (unsigned long long)o->p->declared);
}

static int kp_corrupt(struct kp_out *o, const char *why)
{
    return err_set(o->eb, -EBADMSG, "the %s payload is corrupt after %zu bytes of output: %s",
                   o->p->name, o->pos, why);
}

static int kp_truncated(struct kp_out *o)
{
    return err_set(o->eb, -EBADMSG,
                   "the %s payload is truncated (it ends after %zu bytes of output)", o->p->name,
                   o->pos);
}

static int kp_gzip(struct kp_out *o)
{
    z_stream s = {0};
    size_t room;
    int ret = 0;

    if (inflateInit2(&s, 16 + MAX_WBITS) != Z_OK) /* 16: gzip's header and trailer */
        return err_set(o->eb, -ENOMEM, "zlib: out of memory");
    s.next_in = (Bytef *)o->p->data;
    s.avail_in = (uInt)o->p->len;
    for (;;) {
        if ((ret = kp_step(o, &room)) != 0)
            break;
        if (!room) {
            ret = kp_bomb(o);
            break;
        }
        s.next_out = o->buf + o->pos;
        s.avail_out = (uInt)room;
        int zr = inflate(&s, Z_NO_FLUSH);
        o->pos += room - s.avail_out;
        if (zr == Z_STREAM_END)
            break;
        if (zr == Z_BUF_ERROR || (zr == Z_OK && !s.avail_in && s.avail_out)) {
            ret = kp_truncated(o);
            break;
        }
        if (zr != Z_OK) {
            ret = kp_corrupt(o, s.msg ? s.msg : "inflate failed");
            break;
        }
    }
    inflateEnd(&s);
    return ret;
}

static int kp_bzip2(struct kp_out *o)
{
    bz_stream s = {0};
    size_t room;
    int ret = 0;

    if (BZ2_bzDecompressInit(&s, 0, 0) != BZ_OK)
        return err_set(o->eb, -ENOMEM, "libbz2: out of memory");
    s.next_in = (char *)o->p->data;
    s.avail_in = (unsigned)(o->p->len - 4);
    for (;;) {
        if ((ret = kp_step(o, &room)) != 0)
            break;
        if (!room) {
            ret = kp_bomb(o);
            break;
        }
        s.next_out = (char *)o->buf + o->pos;
        s.avail_out = (unsigned)room;
        int br = BZ2_bzDecompress(&s);
        o->pos += room - s.avail_out;
        if (br == BZ_STREAM_END)
            break;
        if (br == BZ_OK && !s.avail_in && s.avail_out) {
            ret = kp_truncated(o);
            break;
        }
        if (br != BZ_OK) {
            ret = br == BZ_MEM_ERROR ? err_set(o->eb, -ENOMEM, "libbz2: out of memory")
                                     : kp_corrupt(o, "bad bzip2 data");
            break;
        }
    }
    BZ2_bzDecompressEnd(&s);
    return ret;
}

/* xz and lzma (.lzma, "alone"): liblzma, its decoder's memory bounded. */
static int kp_lzma(struct kp_out *o, bool xz)
{
    lzma_stream s = LZMA_STREAM_INIT;
    size_t room;
    int ret = 0;

    lzma_ret lr = xz ? lzma_stream_decoder(&s, KPAYLOAD_MEMLIMIT, 0)
                     : lzma_alone_decoder(&s, KPAYLOAD_MEMLIMIT);
    if (lr != LZMA_OK)
        return err_set(o->eb, -ENOMEM, "liblzma: cannot start a decoder (%d)", (int)lr);
    s.next_in = o->p->data;
    s.avail_in = o->p->len - 4;
    for (;;) {
        if ((ret = kp_step(o, &room)) != 0)
            break;
        if (!room) {
            ret = kp_bomb(o);
            break;
        }
        s.next_out = o->buf + o->pos;
        s.avail_out = room;
        lr = lzma_code(&s, LZMA_FINISH);
        o->pos += room - s.avail_out;
        if (lr == LZMA_STREAM_END)
            break;
        if (lr == LZMA_OK)
            continue;
        if (lr == LZMA_BUF_ERROR)
            ret = s.avail_out ? kp_truncated(o) : 0;
        else if (lr == LZMA_MEMLIMIT_ERROR)
            ret = err_set(o->eb, -EFBIG, "the %s payload's decoder needs more than %s of memory",
                          o->p->name, "256 MiB");
        else if (lr == LZMA_MEM_ERROR)
            ret = err_set(o->eb, -ENOMEM, "liblzma: out of memory");
        else
            ret = kp_corrupt(o, lr == LZMA_FORMAT_ERROR    ? "not in its format"
                                : lr == LZMA_OPTIONS_ERROR ? "unsupported options"
                                                           : "bad data");
        if (ret || s.avail_out)
            break;
    }
    lzma_end(&s);
    return ret;
}

static int kp_zstd(struct kp_out *o)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    size_t room;
    int ret = 0;

    if (!d)
        return err_set(o->eb, -ENOMEM, "libzstd: out of memory");
    /* 2^27: zstd -22 --ultra's window, the most Linux's own decompressor allows. */
    ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, 27);
    ZSTD_inBuffer in = {.src = o->p->data, .size = o->p->len - 4, .pos = 0};
    for (;;) {
        if ((ret = kp_step(o, &room)) != 0)
            break;
        if (!room) {
            ret = kp_bomb(o);
            break;
        }
        ZSTD_outBuffer out = {.dst = o->buf + o->pos, .size = room, .pos = 0};
        size_t zr = ZSTD_decompressStream(d, &out, &in);
        o->pos += out.pos;
        if (ZSTD_isError(zr)) {
            ret = kp_corrupt(o, ZSTD_getErrorName(zr));
            break;
        }
        if (zr == 0) /* a frame is complete: Linux's payload is one frame */
            break;
        if (in.pos == in.size && out.pos < out.size) {
            ret = kp_truncated(o);
            break;
        }
    }
    ZSTD_freeDCtx(d);
    return ret;
}

/* lz4 -l (legacy frames): blocks of at most 8 MiB, each after its le32 compressed size. */
static int kp_lz4(struct kp_out *o)
{
    const size_t block_max = 8 * MiB;
    const uint8_t *in = o->p->data + 4, *end = o->p->data + o->p->len - 4;
    size_t room;
    int ret;

    while (in < end) {
        if ((ret = kp_step(o, &room)) != 0)
            return ret;
        if (end - in < 4)
            return kp_truncated(o);
        uint32_t csize = kp_le32(in);
        in += 4;
        if (csize == 0x184c2102) /* a concatenated stream's magic */
            continue;
        if (csize > (size_t)(end - in))
            return kp_truncated(o);
        if (csize > (uint32_t)LZ4_compressBound((int)block_max))
            return kp_corrupt(o, "a block larger than lz4 makes");
        size_t cap = o->cap - o->pos < block_max ? o->cap - o->pos : block_max;
        if (!cap)
            return kp_bomb(o);
        int n =
            LZ4_decompress_safe((const char *)in, (char *)o->buf + o->pos, (int)csize, (int)cap);
        if (n < 0)
            return cap < block_max ? kp_bomb(o) : kp_corrupt(o, "bad lz4 block");
        o->pos += (size_t)n;
        in += csize;
    }
    return o->pos == o->cap ? kp_bomb(o) : 0;
}

/* lzop's file header (lzop's src/lzop.c; Linux's lib/decompress_unlzo.c): returns its size. */
static int kp_lzo_header(struct kp_out *o, const uint8_t *in, size_t len, uint32_t *flags,
                         size_t *hdr_len)
{
    size_t pos = 9; /* the magic */
#define NEED(n)                                                                                    \
    do {                                                                                           \
        if (len - pos < (n))                                                                       \
            return kp_truncated(o);                                                                \
    } while (0)
    NEED(4);
    unsigned version = (unsigned)in[pos] << 8 | in[pos + 1];
    pos += 4; /* version, lib_version */
    if (version >= 0x0940) {
        NEED(2);
        pos += 2; /* version_needed */
    }
    NEED(2);
    unsigned method = in[pos];
    pos += version >= 0x0940 ? 2 : 1; /* method, level */
    if (method < 1 || method > 3)     /* M_LZO1X_1, M_LZO1X_1_15, M_LZO1X_999 */
        return kp_corrupt(o, "not an LZO1X stream");
    NEED(4);
    *flags = kp_be32(in + pos);
    pos += 4;
    if (*flags & 0x800) { /* F_H_FILTER */
        NEED(4);
        pos += 4;
    }
    NEED(8);
    pos += 8; /* mode, mtime */
    if (version >= 0x0940) {
        NEED(4);
        pos += 4; /* mtime's high half */
    }
    NEED(1);
    size_t name = in[pos++];
    NEED(name + 4);
    pos += name + 4; /* the name, the header's checksum */
#undef NEED
    *hdr_len = pos;
    return 0;
}

static int kp_lzo(struct kp_out *o)
{
    const uint8_t *in = o->p->data;
    size_t len = o->p->len - 4, pos = 0, room;
    uint32_t flags = 0;
    int ret;

    if (lzo_init() != LZO_E_OK)
        return err_set(o->eb, -ENOSYS, "liblzo2 failed to initialise");
    if ((ret = kp_lzo_header(o, in, len, &flags, &pos)) != 0)
        return ret;
    for (;;) {
        if ((ret = kp_step(o, &room)) != 0)
            return ret;
        if (len - pos < 4)
            return kp_truncated(o);
        uint32_t dst_len = kp_be32(in + pos);
        pos += 4;
        if (!dst_len)
            return 0;
        if (dst_len > 64 * MiB) /* lzop writes 256 KiB blocks */
            return kp_corrupt(o, "a block larger than lzop makes");
        if (len - pos < 4)
            return kp_truncated(o);
        uint32_t src_len = kp_be32(in + pos);
        pos += 4;
        size_t sums = ((flags & 0x1) ? 4 : 0) + ((flags & 0x100) ? 4 : 0); /* F_ADLER/CRC32_D */
        if (src_len < dst_len)
            sums += ((flags & 0x2) ? 4 : 0) + ((flags & 0x200) ? 4 : 0); /* F_ADLER/CRC32_C */
        if (src_len > dst_len)
            return kp_corrupt(o, "a block larger compressed than not");
        if (len - pos < sums || len - pos - sums < src_len)
            return kp_truncated(o);
        pos += sums;
        if (o->cap - o->pos <= dst_len)
            return kp_bomb(o); /* the +1 byte must stay free */
        if (src_len == dst_len) {
            memcpy(o->buf + o->pos, in + pos, dst_len);
        } else {
            lzo_uint out_len = dst_len;
            int lr = lzo1x_decompress_safe(in + pos, src_len, o->buf + o->pos, &out_len, NULL);
            if (lr != LZO_E_OK || out_len != dst_len)
                return kp_corrupt(o, "bad lzo block");
        }
        o->pos += dst_len;
        pos += src_len;
    }
}

int kpayload_decompress(const struct kpayload *p, uint64_t max_out, uint64_t deadline_ns,
                        uint8_t **out, size_t *out_len, struct errbuf *eb)
{
    char a[32];
    int ret;

    *out = NULL;
    *out_len = 0;
    if (p->declared > max_out)
        return err_set(eb, -EFBIG,
                       "the %s payload declares %llu bytes uncompressed, more than the %s "
                       "petrel takes",
                       p->name, (unsigned long long)p->declared, fmt_size(max_out, a, sizeof(a)));
    if (p->declared == 0)
        return err_set(eb, -EBADMSG, "the %s payload declares 0 bytes uncompressed", p->name);
    struct kp_out o = {
        .p = p, .cap = (size_t)p->declared + 1, .deadline_ns = deadline_ns, .eb = eb};
    o.buf = malloc(o.cap);
    if (!o.buf)
        return err_set(eb, -ENOMEM, "out of memory for the %s payload's %llu bytes", p->name,
                       (unsigned long long)p->declared);
    switch (p->format) {
    case KPAYLOAD_GZIP:
        ret = kp_gzip(&o);
        break;
    case KPAYLOAD_BZIP2:
        ret = kp_bzip2(&o);
        break;
    case KPAYLOAD_LZMA:
    case KPAYLOAD_XZ:
        ret = kp_lzma(&o, p->format == KPAYLOAD_XZ);
        break;
    case KPAYLOAD_ZSTD:
        ret = kp_zstd(&o);
        break;
    case KPAYLOAD_LZ4:
        ret = kp_lz4(&o);
        break;
    case KPAYLOAD_LZO:
        ret = kp_lzo(&o);
        break;
    default:
        ret = err_set(eb, -ENOTSUP, "no decoder for the %s payload", p->name);
        break;
    }
    if (!ret && o.pos > p->declared)
        ret = kp_bomb(&o);
    if (!ret && o.pos < p->declared)
        ret = err_set(eb, -EBADMSG,
                      "the %s payload decompresses to %zu bytes, not the %llu it declares", p->name,
                      o.pos, (unsigned long long)p->declared);
    if (ret) {
        free(o.buf);
        return ret;
    }
    *out = o.buf;
    *out_len = o.pos;
    return 0;
}
