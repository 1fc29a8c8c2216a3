/*
 * GDT selectors of the kit runtime's own GDT (kit_gdt in lib/head64.S).
 * 0x10 and 0x18 are Linux's __BOOT_CS/__BOOT_DS, so the selectors a loader
 * hands the 64-bit entry stay valid once the kit loads its own table.
 */
#ifndef KIT_SEGMENT_H
#define KIT_SEGMENT_H

#define KIT_CS32 0x08 /* 32-bit flat code: the 32-bit entry runs on it */
#define KIT_CS64 0x10 /* 64-bit code */
#define KIT_DS   0x18 /* flat data */

#endif
