/* A bounds-checked skim of AML for \_S5 and the PCI host bridge; see include/kit/aml.h. */
#include "kit/aml.h"
#include "kit/printf.h"
#include "kit/string.h"

#include <stdarg.h>

/* Opcodes (ACPI 6.x, 20.3). */
#define AML_ZERO       0x00
#define AML_ONE        0x01
#define AML_ALIAS      0x06
#define AML_NAME       0x08
#define AML_BYTE       0x0a
#define AML_WORD       0x0b
#define AML_DWORD      0x0c
#define AML_STRING     0x0d
#define AML_QWORD      0x0e
#define AML_SCOPE      0x10
#define AML_BUFFER     0x11
#define AML_PACKAGE    0x12
#define AML_VARPACKAGE 0x13
#define AML_METHOD     0x14
#define AML_EXTERNAL   0x15
#define AML_DUAL_NAME  0x2e
#define AML_MULTI_NAME 0x2f
#define AML_EXT        0x5b
#define AML_ROOT       0x5c /* '\' */
#define AML_PARENT     0x5e /* '^' */
#define AML_IF         0xa0
#define AML_ELSE       0xa1
#define AML_WHILE      0xa2
#define AML_NOOP       0xa3
#define AML_ONES       0xff

/* After AML_EXT. */
#define AML_X_MUTEX       0x01
#define AML_X_EVENT       0x02
#define AML_X_REVISION    0x30
#define AML_X_OPREGION    0x80
#define AML_X_FIELD       0x81
#define AML_X_DEVICE      0x82
#define AML_X_PROCESSOR   0x83
#define AML_X_POWERRES    0x84
#define AML_X_THERMALZONE 0x85
#define AML_X_INDEXFIELD  0x86
#define AML_X_BANKFIELD   0x87

/* Large resource descriptors (ACPI 6.x, 6.4.3) and address space types. */
#define RES_LARGE       0x80
#define RES_END_TAG     0x0f /* small item type */
#define RES_DWORD_ADDR  0x87
#define RES_WORD_ADDR   0x88
#define RES_QWORD_ADDR  0x8a
#define RES_TYPE_MEMORY 0
#define RES_TYPE_BUS    2

#define AML_MAX_DEPTH 16 /* Scope/Device nesting; the kit's stack is 16 KiB */
#define AML_MAX_SEGS  16

/* Where parsing is: [p, end), p <= end always. */
struct aml_cur {
    const uint8_t *p, *end;
};

/* An absolute namespace path, one 4-character NameSeg a level. */
struct aml_path {
    unsigned n;
    uint32_t seg[AML_MAX_SEGS];
};

struct aml_walk {
    struct aml_info *out;
    const uint8_t *base; /* the AML's start, for offsets in messages */
    int find_crs;        /* the second pass: the host bridge's _CRS */
    struct aml_path pci; /* the host bridge, once found */
};

/* A NameSeg as the uint32 the AML's little-endian bytes make. */
static uint32_t aml_seg(const char *s)
{
    return (uint32_t)(uint8_t)s[0] | (uint32_t)(uint8_t)s[1] << 8 | (uint32_t)(uint8_t)s[2] << 16 |
           (uint32_t)(uint8_t)s[3] << 24;
}

static uint64_t aml_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Records a problem at p (the first one only) and returns -1. */
static int aml_fail(struct aml_walk *w, const uint8_t *p, const char *fmt, ...) KIT_PRINTF(3, 4);
static int aml_fail(struct aml_walk *w, const uint8_t *p, const char *fmt, ...)
{
    va_list ap;
    char what[64];

    if (w->out->error[0])
        return -1;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(w->out->error, sizeof(w->out->error), "%s at AML offset 0x%x", what,
             (unsigned)(p - w->base));
    return -1;
}

static int aml_left(const struct aml_cur *c, size_t n)
{
    return (size_t)(c->end - c->p) >= n;
}

/*
 * PkgLength (20.2.4): the lead byte's bits 7:6 count the bytes that follow;
 * with none, bits 5:0 are the length, else bits 3:0 are its low nibble. The
 * length counts itself and must stay inside the enclosing object.
 */
static int aml_pkglen(struct aml_walk *w, struct aml_cur *c, const uint8_t **pkg_end)
{
    const uint8_t *start = c->p;

    if (!aml_left(c, 1))
        return aml_fail(w, start, "PkgLength past the end");
    uint8_t lead = *c->p++;
    unsigned more = lead >> 6;
    uint32_t len = lead & 0x3f;
    if (more) {
        if (!aml_left(c, more))
            return aml_fail(w, start, "PkgLength past the end");
        len = lead & 0x0f;
        for (unsigned i = 0; i < more; i++)
            len |= (uint32_t)c->p[i] << (4 + 8 * i);
        c->p += more;
    }
    if (len < 1 + more || len > (size_t)(c->end - start))
        return aml_fail(w, start, "PkgLength %u does not fit", len);
    *pkg_end = start + len;
    return 0;
}

static int aml_lead_char(uint8_t b)
{
    return (b >= 'A' && b <= 'Z') || b == '_';
}

/*
 * A NameString (20.2.2), resolved against scope as a declaration is: `\`
 * starts at the root, each `^` goes up one level, then the segments are
 * appended. The result's last segment is the declared name.
 */
static int aml_namestring(struct aml_walk *w, struct aml_cur *c, const struct aml_path *scope,
                          struct aml_path *out)
{
    const uint8_t *start = c->p;
    unsigned nsegs = 1;

    *out = *scope;
    if (aml_left(c, 1) && *c->p == AML_ROOT) {
        out->n = 0;
        c->p++;
    } else {
        while (aml_left(c, 1) && *c->p == AML_PARENT) {
            if (!out->n)
                return aml_fail(w, start, "'^' above the root");
            out->n--;
            c->p++;
        }
    }
    if (!aml_left(c, 1))
        return aml_fail(w, start, "name past the end");
    if (*c->p == AML_ZERO) {
        nsegs = 0;
        c->p++;
    } else if (*c->p == AML_DUAL_NAME) {
        nsegs = 2;
        c->p++;
    } else if (*c->p == AML_MULTI_NAME) {
        if (!aml_left(c, 2))
            return aml_fail(w, start, "name past the end");
        nsegs = c->p[1];
        c->p += 2;
    }
    for (unsigned i = 0; i < nsegs; i++) {
        if (!aml_left(c, 4))
            return aml_fail(w, start, "name past the end");
        if (!aml_lead_char(c->p[0]))
            return aml_fail(w, c->p, "bad NameSeg");
        for (unsigned k = 1; k < 4; k++) {
            if (!aml_lead_char(c->p[k]) && !(c->p[k] >= '0' && c->p[k] <= '9'))
                return aml_fail(w, c->p, "bad NameSeg");
        }
        if (out->n >= AML_MAX_SEGS)
            return aml_fail(w, start, "path deeper than %u", AML_MAX_SEGS);
        out->seg[out->n++] = (uint32_t)aml_le(c->p, 4);
        c->p += 4;
    }
    return 0;
}

/* An integer constant (ZeroOp, OneOp, OnesOp, Byte/Word/DWord/QWordConst).
 * Returns 0, 1 if the next term is something else (c unmoved), -1 if cut off. */
static int aml_integer(struct aml_walk *w, struct aml_cur *c, uint64_t *v)
{
    static const uint8_t size[] = {
        [AML_BYTE] = 1, [AML_WORD] = 2, [AML_DWORD] = 4, [AML_QWORD] = 8};

    if (!aml_left(c, 1))
        return aml_fail(w, c->p, "integer past the end");
    uint8_t op = *c->p;
    if (op == AML_ZERO || op == AML_ONE || op == AML_ONES) {
        *v = op == AML_ONES ? ~0ull : op;
        c->p++;
        return 0;
    }
    if (op >= sizeof(size) || !size[op])
        return 1;
    if (!aml_left(c, 1 + size[op]))
        return aml_fail(w, c->p, "integer past the end");
    *v = aml_le(c->p + 1, size[op]);
    c->p += 1 + size[op];
    return 0;
}

/* Skips a Name's data (DataRefObject). 0, 1 for a term the skim does not
 * know (c unmoved), -1 if malformed. */
static int aml_skip_data(struct aml_walk *w, struct aml_cur *c)
{
    const uint8_t *pkg_end;
    uint64_t v;

    int r = aml_integer(w, c, &v);
    if (r <= 0)
        return r;
    switch (*c->p) {
    case AML_STRING: {
        const uint8_t *nul = c->p + 1;

        while (nul < c->end && *nul)
            nul++;
        if (nul >= c->end)
            return aml_fail(w, c->p, "string past the end");
        c->p = nul + 1;
        return 0;
    }
    case AML_BUFFER:
    case AML_PACKAGE:
    case AML_VARPACKAGE:
        c->p++;
        if (aml_pkglen(w, c, &pkg_end))
            return -1;
        c->p = pkg_end;
        return 0;
    case AML_EXT:
        if (aml_left(c, 2) && c->p[1] == AML_X_REVISION) {
            c->p += 2;
            return 0;
        }
        return 1;
    }
    return 1;
}

static int aml_path_eq(const struct aml_path *a, const struct aml_path *b)
{
    if (a->n != b->n)
        return 0;
    for (unsigned i = 0; i < a->n; i++) {
        if (a->seg[i] != b->seg[i])
            return 0;
    }
    return 1;
}

/* Writes the path as \SEG.SEG, trailing '_' padding dropped as ASL prints it. */
static void aml_path_str(const struct aml_path *p, char *buf, size_t size)
{
    size_t len = 0;

    if (size < 2)
        return;
    buf[len++] = '\\';
    for (unsigned i = 0; i < p->n && len + 6 < size; i++) {
        char s[4];
        unsigned k = 4;

        memcpy(s, &p->seg[i], 4);
        while (k > 1 && s[k - 1] == '_')
            k--;
        if (i)
            buf[len++] = '.';
        memcpy(buf + len, s, k);
        len += k;
    }
    buf[len] = '\0';
}

/* Adds one address-space descriptor's range to what the _CRS offers. */
static void aml_res_range(struct aml_info *out, uint8_t type, uint64_t min, uint64_t max,
                          uint64_t tra)
{
    if (max < min)
        return;
    if (type == RES_TYPE_BUS) {
        if (!out->has_bus) {
            out->has_bus = 1;
            out->bus.min = min;
            out->bus.max = max;
        }
        return;
    }
    if (type != RES_TYPE_MEMORY)
        return;
    out->windows++;
    min += tra;
    max += tra;
    int low = max < (1ull << 32);
    struct aml_range *r = low ? &out->mem32 : &out->mem64;
    int *has = low ? &out->has_mem32 : &out->has_mem64;
    if (!*has || max - min > r->max - r->min) {
        *has = 1;
        r->min = min;
        r->max = max;
    }
}

/*
 * A resource template (ACPI 6.x, 6.4): small items (bit 7 clear; type in
 * bits 6:3, length in 2:0) and large ones (bit 7 set; 16-bit length after
 * the type byte), up to the End Tag. Word (0x88), DWord (0x87) and QWord
 * (0x8a) address space descriptors give the bus range and the memory windows:
 * resource type at byte 3, then flags, then _GRA, _MIN, _MAX, _TRA, _LEN.
 */
static int aml_resources(struct aml_walk *w, const uint8_t *p, const uint8_t *end)
{
    struct aml_info *out = w->out;

    while (p < end) {
        if (!(*p & RES_LARGE)) {
            unsigned len = *p & 7;

            if ((unsigned)(end - p) < 1 + len)
                return aml_fail(w, p, "resource past the buffer");
            if (((*p >> 3) & 0xf) == RES_END_TAG)
                return 0;
            p += 1 + len;
            continue;
        }
        if (end - p < 3)
            return aml_fail(w, p, "resource past the buffer");
        unsigned len = (unsigned)aml_le(p + 1, 2);
        if ((unsigned)(end - p) - 3 < len)
            return aml_fail(w, p, "resource past the buffer");
        const uint8_t *d = p + 3; /* d[0]: the resource type */
        if (*p == RES_WORD_ADDR && len >= 13)
            aml_res_range(out, d[0], aml_le(d + 5, 2), aml_le(d + 7, 2), aml_le(d + 9, 2));
        else if (*p == RES_DWORD_ADDR && len >= 23)
            aml_res_range(out, d[0], aml_le(d + 7, 4), aml_le(d + 11, 4), aml_le(d + 15, 4));
        else if (*p == RES_QWORD_ADDR && len >= 43)
            aml_res_range(out, d[0], aml_le(d + 11, 8), aml_le(d + 19, 8), aml_le(d + 27, 8));
        else if (*p == RES_WORD_ADDR || *p == RES_DWORD_ADDR || *p == RES_QWORD_ADDR)
            return aml_fail(w, p, "short address descriptor");
        p += 3 + len;
    }
    return aml_fail(w, p, "resource template without an End Tag");
}

/* \_S5: Package { SLP_TYPa, SLP_TYPb, ... } of integer constants. */
static int aml_s5(struct aml_walk *w, struct aml_cur c)
{
    const uint8_t *pkg_end;
    uint64_t a, b;

    if (!aml_left(&c, 1) || *c.p != AML_PACKAGE)
        return aml_fail(w, c.p, "\\_S5 is not a Package");
    c.p++;
    if (aml_pkglen(w, &c, &pkg_end))
        return -1;
    c.end = pkg_end;
    if (!aml_left(&c, 1) || *c.p < 1)
        return aml_fail(w, c.p, "\\_S5 is an empty Package");
    unsigned n = *c.p++;
    if (aml_integer(w, &c, &a))
        return aml_fail(w, c.p, "\\_S5 SLP_TYPa is not an integer");
    b = a;
    if (n >= 2 && aml_integer(w, &c, &b))
        return aml_fail(w, c.p, "\\_S5 SLP_TYPb is not an integer");
    w->out->s5 = 1;
    w->out->slp_typa = (unsigned)(a & 7);
    w->out->slp_typb = (unsigned)(b & 7);
    return 0;
}

/* Whether a _HID/_CID value (c at the data) names a PCI host bridge. */
static int aml_is_host_bridge(struct aml_cur c)
{
    static const char *const ids[] = {"PNP0A03", "PNP0A08"};

    if (aml_left(&c, 5) && *c.p == AML_DWORD) {
        uint32_t id = (uint32_t)aml_le(c.p + 1, 4);
        return id == AML_EISAID_PNP0A03 || id == AML_EISAID_PNP0A08;
    }
    for (unsigned i = 0; i < 2; i++) {
        if (aml_left(&c, 9) && *c.p == AML_STRING && !memcmp(c.p + 1, ids[i], 8))
            return 1;
    }
    return 0;
}

/* A Name declaration: path is the object, c is at its data. */
static int aml_visit_name(struct aml_walk *w, const struct aml_path *path, struct aml_cur c)
{
    struct aml_info *out = w->out;
    uint32_t name = path->seg[path->n - 1];
    struct aml_path parent = *path;

    parent.n--;
    if (!w->find_crs) {
        if (name == aml_seg("_S5_") && path->n == 1 && !out->s5)
            return aml_s5(w, c);
        if ((name == aml_seg("_HID") || name == aml_seg("_CID")) && !out->pci &&
            aml_is_host_bridge(c)) {
            out->pci = 1;
            w->pci = parent;
            aml_path_str(&parent, out->pci_path, sizeof(out->pci_path));
        }
        return 0;
    }
    if (name != aml_seg("_CRS") || out->pci_crs || !aml_path_eq(&parent, &w->pci))
        return 0;
    /* Buffer: PkgLength, BufferSize (an integer), then the bytes; a size past
     * the initialiser means zeros follow (19.6.10), which hold no descriptor. */
    const uint8_t *pkg_end;
    uint64_t size;
    if (!aml_left(&c, 1) || *c.p != AML_BUFFER)
        return 0; /* a _CRS method: would need an interpreter */
    c.p++;
    if (aml_pkglen(w, &c, &pkg_end))
        return -1;
    c.end = pkg_end;
    if (aml_integer(w, &c, &size))
        return aml_fail(w, c.p, "_CRS buffer size is not an integer");
    if (size < (uint64_t)(c.end - c.p))
        c.end = c.p + size;
    out->pci_crs = 1;
    return aml_resources(w, c.p, c.end);
}

/*
 * Walks a TermList (a Scope's or Device's body, or the whole block) in
 * scope. Returns 0 (also when it stopped at an opcode it does not know: the
 * caller goes on after this body) or -1 when something is malformed.
 */
static int aml_terms(struct aml_walk *w, struct aml_cur c, const struct aml_path *scope,
                     unsigned depth)
{
    struct aml_path path;
    const uint8_t *pkg_end;
    uint64_t v;

    if (depth > AML_MAX_DEPTH)
        return aml_fail(w, c.p, "nested deeper than %u", AML_MAX_DEPTH);
    while (c.p < c.end) {
        const uint8_t *at = c.p;
        uint8_t op = *c.p++;
        int r = 0;

        switch (op) {
        case AML_NOOP:
            continue;
        case AML_SCOPE: {
            if (aml_pkglen(w, &c, &pkg_end))
                return -1;
            struct aml_cur body = {c.p, pkg_end};
            if (aml_namestring(w, &body, scope, &path) || aml_terms(w, body, &path, depth + 1))
                return -1;
            c.p = pkg_end;
            continue;
        }
        case AML_NAME:
            if (aml_namestring(w, &c, scope, &path))
                return -1;
            if (!path.n)
                return aml_fail(w, at, "Name without a name");
            if (aml_visit_name(w, &path, c))
                return -1;
            r = aml_skip_data(w, &c);
            break;
        case AML_METHOD:
        case AML_IF:
        case AML_ELSE:
        case AML_WHILE:
            if (aml_pkglen(w, &c, &pkg_end))
                return -1;
            c.p = pkg_end;
            continue;
        case AML_ALIAS:
            if (aml_namestring(w, &c, scope, &path) || aml_namestring(w, &c, scope, &path))
                return -1;
            continue;
        case AML_EXTERNAL:
            if (aml_namestring(w, &c, scope, &path))
                return -1;
            if (!aml_left(&c, 2))
                return aml_fail(w, at, "External past the end");
            c.p += 2; /* ObjectType, ArgumentCount */
            continue;
        case AML_EXT:
            if (!aml_left(&c, 1))
                return aml_fail(w, at, "opcode past the end");
            op = *c.p++;
            switch (op) {
            case AML_X_DEVICE: {
                if (aml_pkglen(w, &c, &pkg_end))
                    return -1;
                struct aml_cur body = {c.p, pkg_end};
                if (aml_namestring(w, &body, scope, &path) || aml_terms(w, body, &path, depth + 1))
                    return -1;
                c.p = pkg_end;
                continue;
            }
            case AML_X_PROCESSOR:
            case AML_X_POWERRES:
            case AML_X_THERMALZONE:
            case AML_X_FIELD:
            case AML_X_INDEXFIELD:
            case AML_X_BANKFIELD:
                if (aml_pkglen(w, &c, &pkg_end))
                    return -1;
                c.p = pkg_end;
                continue;
            case AML_X_MUTEX:
                if (aml_namestring(w, &c, scope, &path))
                    return -1;
                if (!aml_left(&c, 1))
                    return aml_fail(w, at, "Mutex past the end");
                c.p++; /* SyncFlags */
                continue;
            case AML_X_EVENT:
                if (aml_namestring(w, &c, scope, &path))
                    return -1;
                continue;
            case AML_X_OPREGION:
                /* NameString, RegionSpace, then offset and length: TermArgs,
                 * skimmable only when they are constants. */
                if (aml_namestring(w, &c, scope, &path))
                    return -1;
                if (!aml_left(&c, 1))
                    return aml_fail(w, at, "OperationRegion past the end");
                c.p++;
                r = aml_integer(w, &c, &v);
                if (!r)
                    r = aml_integer(w, &c, &v);
                break;
            default:
                r = 1;
            }
            break;
        default:
            r = 1;
        }
        if (r < 0)
            return -1;
        if (r > 0) {
            /* Not ours to parse (code at the top level, a reference as data):
             * the rest of this body is skipped. */
            if (!w->find_crs)
                w->out->skipped++;
            return 0;
        }
    }
    return 0;
}

int aml_skim(const uint8_t *aml, size_t len, struct aml_info *out)
{
    struct aml_walk w = {.out = out, .base = aml};
    struct aml_cur c = {aml, aml + len};
    struct aml_path root = {0};

    memset(out, 0, sizeof(*out));
    if (aml_terms(&w, c, &root, 0))
        return -1;
    if (out->pci) {
        w.find_crs = 1;
        if (aml_terms(&w, c, &root, 0))
            return -1;
    }
    return out->error[0] ? -1 : 0;
}
