/*
 * The CMOS real-time clock (MC146818, ports 0x70/0x71): reading the date
 * and time as the PC's BIOS and Linux's mc146818_get_time() do.
 *
 * - Waits (boundedly) for register A's update-in-progress bit to clear,
 *   reads seconds, minutes, hours, day, month, year and the century, and
 *   reads again until two reads agree (an update between them would tear).
 * - Register B bit 2 (DM) set: binary, else BCD; bit 1 (24/12) clear: 12-hour
 *   mode, with the PM flag in bit 7 of the hours.
 * - The century comes from the register the caller names (the FADT's
 *   CENTURY field, 0x32 on a PC) when it reads 19 to 99, else it is 20.
 */
#ifndef KIT_RTC_H
#define KIT_RTC_H

#define RTC_INDEX       0x70 /* bit 7 masks NMI; the kit leaves it clear */
#define RTC_DATA        0x71
#define RTC_CENTURY_REG 0x32 /* the PC's century byte (IBM AT) */

struct rtc_time {
    unsigned year, month, day; /* 2026, 1-12, 1-31 */
    unsigned hour, min, sec;   /* 0-23, 0-59, 0-59 */
    int century;               /* the century register gave the century */
    int binary, hour24;        /* register B's DM and 24/12 bits */
    const char *error;         /* why rtc_read() failed */
};

/* Reads the clock; century_reg 0 means there is none. Returns 0, or -1 if
 * the clock never held still or reads nonsense (t->error says which). */
int rtc_read(struct rtc_time *t, unsigned century_reg);

#endif
