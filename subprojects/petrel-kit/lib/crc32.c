/* Table-driven CRC-32; see include/kit/crc32.h. */
#include "kit/crc32.h"

/*
 * The table is computed by the compiler: CRC32_T(n) runs the bitwise
 * algorithm's eight steps on n as a constant expression, so no table is
 * pasted in and none is built at run time (~10,000 instructions, ~10 ms on
 * kvm_pvm).
 */
#define CRC32_POLY 0xedb88320u
#define CRC32_S(c) (((c) >> 1) ^ (CRC32_POLY & (0u - ((c)&1u))))
#define CRC32_T(n)                                                                                 \
    CRC32_S(CRC32_S(CRC32_S(CRC32_S(CRC32_S(CRC32_S(CRC32_S(CRC32_S((uint32_t)(n)))))))))
#define CRC32_T4(n)  CRC32_T(n), CRC32_T((n) + 1), CRC32_T((n) + 2), CRC32_T((n) + 3)
#define CRC32_T16(n) CRC32_T4(n), CRC32_T4((n) + 4), CRC32_T4((n) + 8), CRC32_T4((n) + 12)
#define CRC32_T64(n) CRC32_T16(n), CRC32_T16((n) + 16), CRC32_T16((n) + 32), CRC32_T16((n) + 48)
#define CRC32_T256   CRC32_T64(0), CRC32_T64(64), CRC32_T64(128), CRC32_T64(192)

static const uint32_t crc32_table[256] = {CRC32_T256};

uint32_t crc32(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    crc = ~crc;
    while (len--)
        crc = crc32_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}
