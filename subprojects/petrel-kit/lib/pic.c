/* Putting the 8259 PICs out of the way; see include/kit/pic.h. */
#include "kit/pic.h"
#include "kit/io.h"

#define PIC1_CMD  0x20
#define PIC1_DATA 0x21
#define PIC2_CMD  0xa0
#define PIC2_DATA 0xa1

#define ICW1_INIT_ICW4 0x11 /* edge, cascaded, ICW4 follows */
#define ICW4_8086      0x01

void pic_disable(void)
{
    /*
     * Remapped first, so a line that fires while masking (or one a buggy
     * VMM delivers anyway) shows up as an unexpected vector, not as an
     * exception: a BIOS leaves the master at 0x08, the vector of #DF.
     */
    outb(ICW1_INIT_ICW4, PIC1_CMD);
    outb(ICW1_INIT_ICW4, PIC2_CMD);
    outb(PIC_VECTOR_BASE, PIC1_DATA);
    outb(PIC_VECTOR_BASE + 8, PIC2_DATA);
    outb(1 << 2, PIC1_DATA); /* the slave hangs off IRQ 2 */
    outb(2, PIC2_DATA);
    outb(ICW4_8086, PIC1_DATA);
    outb(ICW4_8086, PIC2_DATA);
    outb(0xff, PIC1_DATA);
    outb(0xff, PIC2_DATA);
}
