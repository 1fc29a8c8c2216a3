/* The CMOS RTC's date and time; see include/kit/rtc.h. */
#include "kit/rtc.h"
#include "kit/io.h"
#include "kit/string.h"

#include <stdint.h>

/* Registers (MC146818A datasheet). */
#define RTC_SEC   0x00
#define RTC_MIN   0x02
#define RTC_HOUR  0x04
#define RTC_DAY   0x07
#define RTC_MONTH 0x08
#define RTC_YEAR  0x09
#define RTC_REG_A 0x0a
#define RTC_REG_B 0x0b

#define RTC_A_UIP   0x80 /* an update is in progress (or starts within 244 us) */
#define RTC_B_DM    0x04 /* binary, not BCD */
#define RTC_B_24H   0x02
#define RTC_HOUR_PM 0x80 /* in 12-hour mode */

/* An update takes under 2 ms; each poll is two port accesses (VM exits). */
#define RTC_UIP_POLLS 10000
#define RTC_TRIES     8

enum { R_SEC, R_MIN, R_HOUR, R_DAY, R_MONTH, R_YEAR, R_CENTURY, R_B, R_COUNT };

static uint8_t rtc_reg(uint8_t reg)
{
    outb(reg, RTC_INDEX);
    return inb(RTC_DATA);
}

static void rtc_wait_uip(void)
{
    for (unsigned i = 0; i < RTC_UIP_POLLS; i++) {
        if (!(rtc_reg(RTC_REG_A) & RTC_A_UIP))
            return;
    }
}

static void rtc_snapshot(uint8_t r[R_COUNT], unsigned century_reg)
{
    rtc_wait_uip();
    r[R_SEC] = rtc_reg(RTC_SEC);
    r[R_MIN] = rtc_reg(RTC_MIN);
    r[R_HOUR] = rtc_reg(RTC_HOUR);
    r[R_DAY] = rtc_reg(RTC_DAY);
    r[R_MONTH] = rtc_reg(RTC_MONTH);
    r[R_YEAR] = rtc_reg(RTC_YEAR);
    r[R_CENTURY] = century_reg ? rtc_reg((uint8_t)century_reg) : 0;
    r[R_B] = rtc_reg(RTC_REG_B);
}

/* A register's value: BCD unless binary; 0xff when a BCD digit is not one. */
static unsigned rtc_value(uint8_t v, int binary)
{
    if (binary)
        return v;
    if ((v & 0xf) > 9 || (v >> 4) > 9)
        return 0xff;
    return (v >> 4) * 10 + (v & 0xf);
}

int rtc_read(struct rtc_time *t, unsigned century_reg)
{
    uint8_t a[R_COUNT], b[R_COUNT];
    unsigned tries = 0;

    memset(t, 0, sizeof(*t));
    rtc_snapshot(a, century_reg);
    for (;;) {
        rtc_snapshot(b, century_reg);
        if (!memcmp(a, b, sizeof(a)))
            break;
        if (++tries == RTC_TRIES) {
            t->error = "the clock never read the same twice";
            return -1;
        }
        memcpy(a, b, sizeof(a));
    }
    t->binary = !!(a[R_B] & RTC_B_DM);
    t->hour24 = !!(a[R_B] & RTC_B_24H);
    t->sec = rtc_value(a[R_SEC], t->binary);
    t->min = rtc_value(a[R_MIN], t->binary);
    t->hour = rtc_value(a[R_HOUR] & ~RTC_HOUR_PM, t->binary);
    t->day = rtc_value(a[R_DAY], t->binary);
    t->month = rtc_value(a[R_MONTH], t->binary);
    unsigned yy = rtc_value(a[R_YEAR], t->binary);
    if (!t->hour24) {
        /* 12 AM is midnight, 12 PM noon. */
        if (t->hour < 1 || t->hour > 12) {
            t->error = "12-hour clock reads an hour outside 1-12";
            return -1;
        }
        t->hour = t->hour % 12 + (a[R_HOUR] & RTC_HOUR_PM ? 12 : 0);
    }
    unsigned cc = century_reg ? rtc_value(a[R_CENTURY], t->binary) : 0;
    t->century = cc >= 19 && cc <= 99;
    t->year = (t->century ? cc : 20) * 100 + yy;
    if (yy > 99 || t->month < 1 || t->month > 12 || t->day < 1 || t->day > 31 || t->hour > 23 ||
        t->min > 59 || t->sec > 59) {
        t->error = "a field is out of range";
        return -1;
    }
    return 0;
}
