/* ACPI Machine Language builder (ACPI 6.x, 20.2 and 6.4). */
#include "petrel/aml.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum {
    AML_ZERO = 0x00,
    AML_ONE = 0x01,
    AML_NAME_OP = 0x08,
    AML_BYTE_PREFIX = 0x0a,
    AML_WORD_PREFIX = 0x0b,
    AML_DWORD_PREFIX = 0x0c,
    AML_STRING_PREFIX = 0x0d,
    AML_QWORD_PREFIX = 0x0e,
    AML_SCOPE_OP = 0x10,
    AML_BUFFER_OP = 0x11,
    AML_PACKAGE_OP = 0x12,
    AML_DUAL_NAME_PREFIX = 0x2e,
    AML_MULTI_NAME_PREFIX = 0x2f,
    AML_EXT_OP_PREFIX = 0x5b,
    AML_DEVICE_OP = 0x82, /* after AML_EXT_OP_PREFIX */
    AML_ROOT_CHAR = 0x5c,
};

/* A buffer's body starts with its size (an integer); see aml_close(). */
#define AML_BUFFER_MARK ((size_t)1 << (sizeof(size_t) * 8 - 1))

void aml_init(struct aml *a)
{
    memset(a, 0, sizeof(*a));
}

void aml_free(struct aml *a)
{
    free(a->buf);
    aml_init(a);
}

int aml_finish(struct aml *a)
{
    if (!a->error && a->depth)
        a->error = -EINVAL;
    return a->error;
}

static void fail(struct aml *a, int err)
{
    if (!a->error)
        a->error = err;
}

static uint8_t *reserve(struct aml *a, size_t n)
{
    if (a->error)
        return NULL;
    if (a->len + n > a->cap) {
        size_t cap = a->cap ? a->cap : 256;
        while (cap < a->len + n)
            cap *= 2;
        uint8_t *b = realloc(a->buf, cap);
        if (!b) {
            fail(a, -ENOMEM);
            return NULL;
        }
        a->buf = b;
        a->cap = cap;
    }
    uint8_t *p = a->buf + a->len;
    a->len += n;
    return p;
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
    uint8_t *d = reserve(a, n);
    if (d && n)
        memcpy(d, p, n);
}

static void byte(struct aml *a, uint8_t b)
{
    aml_bytes(a, &b, 1);
}

static void le(struct aml *a, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        byte(a, (uint8_t)(v >> (8 * i)));
}

static bool seg_char_ok(char c, bool first)
{
    return (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

/* Writes a NameString: an optional root prefix and 1..255 segments. */
static void name_string(struct aml *a, const char *name)
{
    char segs[8][4];
    unsigned n = 0;

    if (*name == '\\') {
        byte(a, AML_ROOT_CHAR);
        name++;
    }
    while (*name) {
        size_t l = strcspn(name, ".");
        if (l == 0 || l > 4 || n == 8) {
            fail(a, -EINVAL);
            return;
        }
        for (size_t i = 0; i < 4; i++) {
            char c = i < l ? name[i] : '_';
            if (!seg_char_ok(c, i == 0)) {
                fail(a, -EINVAL);
                return;
            }
            segs[n][i] = c;
        }
        n++;
        name += l;
        if (*name == '.')
            name++;
    }
    if (n == 0) {
        byte(a, 0); /* NullName: only the root itself */
        return;
    }
    if (n == 2) {
        byte(a, AML_DUAL_NAME_PREFIX);
    } else if (n > 2) {
        byte(a, AML_MULTI_NAME_PREFIX);
        byte(a, (uint8_t)n);
    }
    aml_bytes(a, segs, 4 * (size_t)n);
}

void aml_name(struct aml *a, const char *name)
{
    byte(a, AML_NAME_OP);
    name_string(a, name);
}

void aml_int(struct aml *a, uint64_t v)
{
    if (v == 0) {
        byte(a, AML_ZERO);
    } else if (v == 1) {
        byte(a, AML_ONE);
    } else if (v <= 0xff) {
        byte(a, AML_BYTE_PREFIX);
        le(a, v, 1);
    } else if (v <= 0xffff) {
        byte(a, AML_WORD_PREFIX);
        le(a, v, 2);
    } else if (v <= 0xffffffff) {
        byte(a, AML_DWORD_PREFIX);
        le(a, v, 4);
    } else {
        byte(a, AML_QWORD_PREFIX);
        le(a, v, 8);
    }
}

void aml_string(struct aml *a, const char *s)
{
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c > 0x7f)
            fail(a, -EINVAL); /* AML strings are ASCII */
    }
    byte(a, AML_STRING_PREFIX);
    aml_bytes(a, s, strlen(s) + 1);
}

void aml_eisaid(struct aml *a, const char *id)
{
    /* Three letters in five bits each, then four hex digits; stored big-endian. */
    if (strlen(id) != 7) {
        fail(a, -EINVAL);
        return;
    }
    uint32_t v = 0;
    for (int i = 0; i < 3; i++) {
        if (id[i] < 'A' || id[i] > 'Z') {
            fail(a, -EINVAL);
            return;
        }
        v = v << 5 | (uint32_t)(id[i] - 0x40);
    }
    for (int i = 3; i < 7; i++) {
        char c = id[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else {
            fail(a, -EINVAL);
            return;
        }
        v = v << 4 | d;
    }
    byte(a, AML_DWORD_PREFIX);
    byte(a, (uint8_t)(v >> 24));
    byte(a, (uint8_t)(v >> 16));
    byte(a, (uint8_t)(v >> 8));
    byte(a, (uint8_t)v);
}

static void open_body(struct aml *a, size_t mark)
{
    if (a->depth == AML_MAX_DEPTH) {
        fail(a, -E2BIG);
        return;
    }
    a->open[a->depth++] = a->len | mark;
}

void aml_scope(struct aml *a, const char *name)
{
    byte(a, AML_SCOPE_OP);
    open_body(a, 0);
    name_string(a, name);
}

void aml_device(struct aml *a, const char *name)
{
    byte(a, AML_EXT_OP_PREFIX);
    byte(a, AML_DEVICE_OP);
    open_body(a, 0);
    name_string(a, name);
}

void aml_package(struct aml *a, uint8_t n)
{
    byte(a, AML_PACKAGE_OP);
    open_body(a, 0);
    byte(a, n);
}

void aml_buffer(struct aml *a)
{
    byte(a, AML_BUFFER_OP);
    open_body(a, AML_BUFFER_MARK);
}

/* Inserts n bytes at offset at, moving what follows. */
static uint8_t *insert(struct aml *a, size_t at, size_t n)
{
    if (!reserve(a, n))
        return NULL;
    memmove(a->buf + at + n, a->buf + at, a->len - n - at);
    return a->buf + at;
}

void aml_close(struct aml *a)
{
    if (a->error)
        return;
    if (a->depth == 0) {
        fail(a, -EINVAL);
        return;
    }
    size_t start = a->open[--a->depth];
    bool is_buffer = start & AML_BUFFER_MARK;
    start &= ~AML_BUFFER_MARK;

    if (is_buffer) {
        /* The buffer's size goes first, as an integer, inside the PkgLength. */
        size_t body = a->len - start;
        struct aml size;
        aml_init(&size);
        aml_int(&size, body);
        uint8_t *p = size.error ? NULL : insert(a, start, size.len);
        if (p)
            memcpy(p, size.buf, size.len);
        fail(a, size.error);
        aml_free(&size);
        if (a->error)
            return;
    }

    /* PkgLength counts itself: one byte up to 63, else 2-4 bytes of 4+8+8+8 bits. */
    size_t body = a->len - start;
    unsigned n;
    size_t total = 0;
    for (n = 1; n <= 4; n++) {
        total = body + n;
        size_t max = n == 1 ? 0x3f : ((size_t)1 << (4 + 8 * (n - 1))) - 1;
        if (total <= max)
            break;
    }
    if (n > 4) {
        fail(a, -E2BIG);
        return;
    }
    uint8_t *p = insert(a, start, n);
    if (!p)
        return;
    if (n == 1) {
        p[0] = (uint8_t)total;
        return;
    }
    p[0] = (uint8_t)((n - 1) << 6 | (total & 0xf));
    for (unsigned i = 1; i < n; i++)
        p[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
}

void aml_res_io(struct aml *a, uint16_t base, uint8_t len)
{
    byte(a, 0x47); /* small item 0x08 (I/O port), length 7 */
    byte(a, 0x01); /* decodes 16 address bits */
    le(a, base, 2);
    le(a, base, 2);
    byte(a, 1);
    byte(a, len);
}

void aml_res_irq(struct aml *a, unsigned irq)
{
    if (irq > 15) {
        fail(a, -EINVAL);
        return;
    }
    byte(a, 0x22); /* small item 0x04 (IRQ), length 2: edge, active high, exclusive */
    le(a, 1u << irq, 2);
}

/* Word/DWord address space descriptors: producer, fixed min and max, positive decode. */
enum { RES_MEM = 0, RES_IO = 1, RES_BUS = 2 };
#define RES_GENERAL_FLAGS 0x0c

static void word_range(struct aml *a, uint8_t type, uint8_t type_flags, uint16_t first,
                       uint16_t last)
{
    byte(a, 0x88); /* large item 0x08 (Word address space) */
    le(a, 13, 2);
    byte(a, type);
    byte(a, RES_GENERAL_FLAGS);
    byte(a, type_flags);
    le(a, 0, 2); /* granularity */
    le(a, first, 2);
    le(a, last, 2);
    le(a, 0, 2); /* translation */
    le(a, (uint32_t)last - first + 1, 2);
}

void aml_res_bus_range(struct aml *a, uint16_t first, uint16_t last)
{
    word_range(a, RES_BUS, 0, first, last);
}

void aml_res_io_range(struct aml *a, uint16_t first, uint16_t last)
{
    word_range(a, RES_IO, 0x03 /* ISA and non-ISA ranges */, first, last);
}

void aml_res_mem32_range(struct aml *a, uint32_t first, uint32_t last)
{
    byte(a, 0x87); /* large item 0x07 (DWord address space) */
    le(a, 23, 2);
    byte(a, RES_MEM);
    byte(a, RES_GENERAL_FLAGS);
    byte(a, 0x01); /* read-write, non-cacheable */
    le(a, 0, 4);
    le(a, first, 4);
    le(a, last, 4);
    le(a, 0, 4);
    le(a, (uint64_t)last - first + 1, 4);
}

void aml_res_end(struct aml *a)
{
    byte(a, 0x79); /* small item 0x0f (end tag), length 1 */
    byte(a, 0x00); /* checksum 0: treated as valid */
}
