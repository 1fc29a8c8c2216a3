/*
 * info: prints what the boot protocol told the guest, then exits 0 (1 if the
 * e820 map has no RAM at all). Lines (include/kit/sysinfo.h):
 *
 *   info: memory <N> KiB
 *   info: cmdline "<command line>"
 *   info: initrd <size> bytes crc32 <8 hex digits>    (or: info: initrd none)
 *   info: lapic id <N>
 *
 * The CRC is IEEE CRC-32, as Python's zlib.crc32; it costs ~6 s a MiB of
 * initrd at CPL0 on kvm_pvm, so tests pass small ones.
 */
#include "kit/kit.h"
#include "kit/sysinfo.h"

int kit_main(void)
{
    return sysinfo_print("info") ? 0 : 1;
}
