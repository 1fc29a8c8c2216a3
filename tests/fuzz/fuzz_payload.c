/*
 * Fuzz target: a bzImage's payload, found, identified and decompressed by
 * each format's decoder (kernel_payload.c), and the vmlinux that comes out
 * checked against the bzImage's header (bzimage_adopt_vmlinux()).
 *
 * Byte 0 even: the rest is a payload alone; odd: a bzImage that carries one.
 * Output is bounded at 1 MiB so that an iteration stays short. Beyond not
 * crashing: a decompressed payload is exactly its declared size, within the
 * bound, and an adopted vmlinux carries the bzImage's setup header and lies
 * where its header says.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "petrel/kernel_payload.h"
#include "petrel/x86_boot.h"

#define OUT_MAX (1 * MiB)

static void fuzz_decompress(const struct kpayload *p, const struct bzimage *bz, const uint8_t *img)
{
    struct errbuf eb;
    uint8_t *out;
    size_t len;

    if (kpayload_decompress(p, OUT_MAX, now_ns() + 5000000000ULL, &out, &len, &eb))
        return;
    FUZZ_CHECK(len == p->declared && len <= OUT_MAX);
    struct kernel_image k;
    if (bz && !vmlinux_parse(out, len, len, &k, &eb) && !bzimage_adopt_vmlinux(bz, img, &k, &eb)) {
        FUZZ_CHECK(k.hdr == img + BP_HDR && k.hdr_len == bz->hdr_end - BP_HDR);
        for (unsigned i = 0; i < k.nr_seg; i++) {
            FUZZ_CHECK(k.seg[i].gpa >= bz->pref_address);
            FUZZ_CHECK(k.seg[i].data >= out && k.seg[i].data + k.seg[i].filesz <= out + len);
        }
        FUZZ_CHECK(k.end - bz->pref_address <= bz->hdr_init_size);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct errbuf eb;
    struct kpayload p;

    if (size < 1)
        return 0;
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    if (!(data[0] & 1)) {
        if (!kpayload_identify(in, len, &p, &eb)) {
            FUZZ_CHECK(p.data == in && p.len == len && len >= 4);
            fuzz_decompress(&p, NULL, NULL);
        }
        return 0;
    }
    struct bzimage bz;
    const uint8_t *pl;
    size_t plen;
    if (bzimage_parse(in, len, &bz, &eb) || bzimage_payload(&bz, in, &pl, &plen, &eb))
        return 0;
    FUZZ_CHECK(pl >= bz.pm && pl + plen <= in + len);
    if (!kpayload_identify(pl, plen, &p, &eb))
        fuzz_decompress(&p, &bz, in);
    return 0;
}
