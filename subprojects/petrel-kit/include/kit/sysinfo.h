/*
 * What the boot protocol told the guest, in the lines the `info` program and
 * the demo's `info` command print (tests parse them):
 *
 *   <prefix>: memory <N> KiB                     e820 RAM, summed, in KiB
 *   <prefix>: cmdline "<command line>"           as passed, unescaped
 *   <prefix>: initrd <size> bytes crc32 <8 hex>  or: <prefix>: initrd none
 *   <prefix>: lapic id <N>                       the APIC ID of this CPU
 */
#ifndef KIT_SYSINFO_H
#define KIT_SYSINFO_H

/* Prints the lines above; returns the RAM total in KiB (0: no e820 RAM). */
unsigned long long sysinfo_print(const char *prefix);

#endif
