/* CMOS real-time clock (MC146818A) and CMOS RAM; include/petrel/rtc_cmos.h explains the model. */
#include "petrel/rtc_cmos.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "petrel/guest_mem.h"
#include "petrel/platform.h"

#define NS_PER_SEC   1000000000LL
#define SECS_PER_DAY 86400
#define UIP_NS       244000 /* UIP rises this long before an update (32.768 kHz time base) */
/* Leaving divider reset, the first update comes half a second later. */
#define RESTART_PHASE_NS (NS_PER_SEC / 2)
#define TIMER_MIN_NS     (NS_PER_SEC / RTC_CMOS_TIMER_MAX_HZ)
#define EQUIPMENT        0x06 /* a math coprocessor and a PS/2 mouse; no floppy drive */

/* The registers that make up the time and date. */
static const uint8_t time_regs[] = {
    RTC_SECONDS,      RTC_MINUTES, RTC_HOURS, RTC_DAY_OF_WEEK,
    RTC_DAY_OF_MONTH, RTC_MONTH,   RTC_YEAR,  RTC_CENTURY,
};

/* A date and time of day, each field in range. */
struct rtc_tm {
    int64_t year;
    unsigned month, mday, hour, min, sec;
    unsigned wday; /* 0 = Sunday */
};

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static int64_t host_realtime_ns(void *ctx)
{
    (void)ctx;
    return clock_ns(CLOCK_REALTIME);
}

static int64_t host_monotonic_ns(void *ctx)
{
    (void)ctx;
    return clock_ns(CLOCK_MONOTONIC);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b < 0);
}

static int64_t floor_mod(int64_t a, int64_t b)
{
    return a - floor_div(a, b) * b;
}

static struct rtc_cmos_ts ts_norm(int64_t sec, int64_t nsec)
{
    return (struct rtc_cmos_ts){sec + floor_div(nsec, NS_PER_SEC), floor_mod(nsec, NS_PER_SEC)};
}

static int ts_cmp(struct rtc_cmos_ts a, struct rtc_cmos_ts b)
{
    if (a.sec != b.sec)
        return a.sec < b.sec ? -1 : 1;
    return (a.nsec > b.nsec) - (a.nsec < b.nsec);
}

/* a - b in ns, for a >= b less than a few days apart (the timer's events). */
static int64_t ts_delta_ns(struct rtc_cmos_ts a, struct rtc_cmos_ts b)
{
    return (a.sec - b.sec) * NS_PER_SEC + (a.nsec - b.nsec);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, struct rtc_tm *tm)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    tm->mday = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    tm->month = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    tm->year = yoe + era * 400 + (tm->month <= 2);
}

static unsigned days_in_month(int64_t year, unsigned month)
{
    static const uint8_t days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

static void tm_from_sec(int64_t sec, struct rtc_tm *tm)
{
    int64_t days = floor_div(sec, SECS_PER_DAY);
    int64_t tod = floor_mod(sec, SECS_PER_DAY);
    civil_from_days(days, tm);
    tm->hour = (unsigned)(tod / 3600);
    tm->min = (unsigned)(tod / 60 % 60);
    tm->sec = (unsigned)(tod % 60);
    tm->wday = (unsigned)floor_mod(days + 4, 7); /* 1970-01-01 was a Thursday */
}

static unsigned clamp(unsigned v, unsigned lo, unsigned hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* A register value 0-99 in the data mode register B selects. */
static uint8_t enc(uint8_t b, unsigned v)
{
    return (uint8_t)(b & RTC_B_DM ? v : (v / 10) << 4 | v % 10);
}

/* The inverse, for any byte: BCD nibbles above 9 count as their value (0xff -> 165). */
static unsigned dec(uint8_t b, uint8_t v)
{
    return b & RTC_B_DM ? v : (unsigned)(v >> 4) * 10 + (v & 0xf);
}

static uint8_t enc_hour(uint8_t b, unsigned hour)
{
    if (b & RTC_B_24H)
        return enc(b, hour);
    unsigned h12 = hour % 12 ? hour % 12 : 12;
    return (uint8_t)(enc(b, h12) | (hour >= 12 ? RTC_HOUR_PM : 0));
}

/* An hours byte as 0-23: in 12-hour mode 12 AM is midnight and 12 PM noon. */
static unsigned dec_hour(uint8_t b, uint8_t v)
{
    if (b & RTC_B_24H)
        return clamp(dec(b, v), 0, 23);
    unsigned h12 = clamp(dec(b, v & ~RTC_HOUR_PM), 1, 12);
    return h12 % 12 + (v & RTC_HOUR_PM ? 12 : 0);
}

/* The guest's time now. */
static struct rtc_cmos_ts rtc_now(const struct rtc_cmos *rtc)
{
    if (rtc->halted)
        return rtc->frozen;
    int64_t host = rtc->clock.realtime_ns(rtc->clock.ctx);
    return ts_norm(floor_div(host, NS_PER_SEC) + rtc->offset.sec,
                   floor_mod(host, NS_PER_SEC) + rtc->offset.nsec);
}

/* Makes the guest's time t from now on. */
static void rtc_set_now(struct rtc_cmos *rtc, struct rtc_cmos_ts t)
{
    if (rtc->halted) {
        rtc->frozen = t;
        return;
    }
    int64_t host = rtc->clock.realtime_ns(rtc->clock.ctx);
    rtc->offset =
        ts_norm(t.sec - floor_div(host, NS_PER_SEC), t.nsec - floor_mod(host, NS_PER_SEC));
}

/* The value of time register reg at guest time t, in the current mode. */
static uint8_t rtc_time_reg(struct rtc_cmos *rtc, int64_t t, unsigned reg)
{
    uint8_t b = rtc->cmos[RTC_REG_B];
    struct rtc_tm tm;

    tm_from_sec(t, &tm);
    switch (reg) {
    case RTC_SECONDS:
        return enc(b, tm.sec);
    case RTC_MINUTES:
        return enc(b, tm.min);
    case RTC_HOURS:
        return enc_hour(b, tm.hour);
    case RTC_DAY_OF_WEEK:
        return enc(b, (tm.wday + rtc->wday_delta) % 7 + 1);
    case RTC_DAY_OF_MONTH:
        return enc(b, tm.mday);
    case RTC_MONTH:
        return enc(b, tm.month);
    case RTC_YEAR:
        return enc(b, (unsigned)floor_mod(tm.year, 100));
    default: /* RTC_CENTURY: past 9999 (or before 0, if the host's clock steps back) it wraps */
        return enc(b, (unsigned)floor_mod(floor_div(tm.year, 100), 100));
    }
}

static bool is_time_reg(unsigned reg)
{
    return memchr(time_regs, (int)reg, sizeof(time_regs)) != NULL;
}

/* Copies the time at t into the time registers' slots (SET going to 1). */
static void rtc_freeze(struct rtc_cmos *rtc, int64_t t)
{
    for (unsigned i = 0; i < sizeof(time_regs); i++)
        rtc->cmos[time_regs[i]] = rtc_time_reg(rtc, t, time_regs[i]);
}

/* Sets the guest's time from the time registers' slots, clamping each field into range;
 * the sub-second phase of the divider stays. */
static void rtc_thaw(struct rtc_cmos *rtc)
{
    const uint8_t *r = rtc->cmos;
    uint8_t b = r[RTC_REG_B];
    struct rtc_tm tm;

    tm.sec = clamp(dec(b, r[RTC_SECONDS]), 0, 59);
    tm.min = clamp(dec(b, r[RTC_MINUTES]), 0, 59);
    tm.hour = dec_hour(b, r[RTC_HOURS]);
    tm.year = clamp(dec(b, r[RTC_CENTURY]), 0, 99) * 100 + clamp(dec(b, r[RTC_YEAR]), 0, 99);
    tm.month = clamp(dec(b, r[RTC_MONTH]), 1, 12);
    tm.mday = clamp(dec(b, r[RTC_DAY_OF_MONTH]), 1, days_in_month(tm.year, tm.month));

    int64_t days = days_from_civil(tm.year, tm.month, tm.mday);
    struct rtc_cmos_ts now = rtc_now(rtc);
    now.sec = days * SECS_PER_DAY + tm.hour * 3600 + tm.min * 60 + tm.sec;
    rtc_set_now(rtc, now);
    tm_from_sec(now.sec, &tm);
    /* The weekday written (1-7; others count mod 7) against the one the date implies. */
    rtc->wday_delta = (dec(b, r[RTC_DAY_OF_WEEK]) + 6 + 7 - tm.wday) % 7;
    /* The time jumped: the events in between did not happen. */
    rtc->synced = now;
}

/* The periodic interrupt's rate in Hz, or 0 when it is off. */
static unsigned rtc_periodic_hz(struct rtc_cmos *rtc)
{
    unsigned rate = rtc->cmos[RTC_REG_A] & RTC_A_RATE_MASK;

    if (!rate || rtc->halted)
        return 0;
    if (rate <= 2)
        rate += 7; /* 256 and 128 Hz with a 32.768 kHz time base (MC146818A, register A) */
    return 32768u >> (rate - 1);
}

/* How many periodic ticks (at multiples of 1/hz s of guest time) have passed by t. */
static int64_t tick_index(struct rtc_cmos_ts t, unsigned hz)
{
    return t.sec * hz + t.nsec * hz / NS_PER_SEC;
}

/* The guest time of tick k: the first instant whose tick_index() is k. */
static struct rtc_cmos_ts tick_time(int64_t k, unsigned hz)
{
    int64_t sec = floor_div(k, hz);
    int64_t rem = k - sec * hz;
    return (struct rtc_cmos_ts){sec, (rem * NS_PER_SEC + hz - 1) / hz};
}

/* The values 0..n-1 an alarm byte matches: all of them, one (v), or none (v < 0). */
struct alarm_field {
    bool any;
    int v;
};

static struct alarm_field alarm_field(uint8_t b, uint8_t alarm, unsigned n, bool hours)
{
    struct alarm_field f = {.any = (alarm & RTC_ALARM_DONTCARE) == RTC_ALARM_DONTCARE, .v = -1};

    for (unsigned v = 0; v < n && !f.any; v++) {
        if ((hours ? enc_hour(b, v) : enc(b, v)) == alarm)
            f.v = (int)v;
    }
    return f;
}

/* The first value >= from that f matches, or -1. */
static int alarm_next_in(struct alarm_field f, int from, int n)
{
    if (f.any)
        return from < n ? from : -1;
    return f.v >= from ? f.v : -1;
}

/*
 * The first second boundary after guest second `after` at which the alarm
 * matches: the chip compares the alarm bytes with the time bytes at each
 * update, so the comparison is of encoded values in the current mode. -1 when
 * an alarm byte matches no valid time (e.g. 0x60 seconds): it never fires.
 */
static int64_t rtc_alarm_next(struct rtc_cmos *rtc, int64_t after)
{
    uint8_t b = rtc->cmos[RTC_REG_B];
    struct alarm_field fs = alarm_field(b, rtc->cmos[RTC_SECONDS_ALARM], 60, false);
    struct alarm_field fm = alarm_field(b, rtc->cmos[RTC_MINUTES_ALARM], 60, false);
    struct alarm_field fh = alarm_field(b, rtc->cmos[RTC_HOURS_ALARM], 24, true);

    if ((!fs.any && fs.v < 0) || (!fm.any && fm.v < 0) || (!fh.any && fh.v < 0))
        return -1;
    int64_t day = floor_div(after, SECS_PER_DAY);
    int start = (int)floor_mod(after, SECS_PER_DAY) + 1; /* a time of day, maybe 86400 */
    /* Every field matches something, so a match comes within a day. */
    for (int d = 0; d < 2; d++, start = 0) {
        int sh = start / 3600, sm = start / 60 % 60, ss = start % 60;
        for (int h = alarm_next_in(fh, sh, 24); h >= 0; h = alarm_next_in(fh, h + 1, 24)) {
            int m0 = h == sh ? sm : 0;
            for (int m = alarm_next_in(fm, m0, 60); m >= 0; m = alarm_next_in(fm, m + 1, 60)) {
                int s = alarm_next_in(fs, h == sh && m == sm ? ss : 0, 60);
                if (s >= 0)
                    return (day + d) * SECS_PER_DAY + h * 3600 + m * 60 + s;
            }
        }
    }
    return -1;
}

/*
 * Brings register C's flags up to guest time now: PF if a periodic tick,
 * UF if an update (a second boundary, none while SET holds them off), AF if
 * an update matching the alarm, happened since the last sync.
 */
static void rtc_sync(struct rtc_cmos *rtc, struct rtc_cmos_ts now)
{
    struct rtc_cmos_ts last = rtc->synced;

    /* The host's clock stepped back: start again from here rather than wait. */
    rtc->synced = now;
    if (rtc->halted || ts_cmp(now, last) <= 0)
        return;
    unsigned hz = rtc_periodic_hz(rtc);
    if (hz && tick_index(now, hz) > tick_index(last, hz))
        rtc->flags |= RTC_C_PF;
    if (!(rtc->cmos[RTC_REG_B] & RTC_B_SET) && now.sec > last.sec) {
        rtc->flags |= RTC_C_UF;
        int64_t alarm = rtc_alarm_next(rtc, last.sec);
        if (alarm >= 0 && alarm <= now.sec)
            rtc->flags |= RTC_C_AF;
    }
}

/* IRQ 8 follows IRQF (the chip's IRQ# pin): an enabled flag is set. */
static void rtc_update_irq(struct rtc_cmos *rtc)
{
    bool level = (rtc->flags & rtc->cmos[RTC_REG_B] & RTC_C_EVENTS) != 0;

    if (level != rtc->irq_level) {
        rtc->irq_level = level;
        irq_set(rtc->irq, level);
    }
}

/* The guest time of the next event that would raise IRQ 8; false if none can. */
static bool rtc_next_event(struct rtc_cmos *rtc, struct rtc_cmos_ts now, struct rtc_cmos_ts *at)
{
    uint8_t b = rtc->cmos[RTC_REG_B];
    unsigned hz = rtc_periodic_hz(rtc);
    bool found = false;

    /* While the line is held, further events only set flags, which the read of C computes. */
    if (rtc->irq_level || rtc->halted)
        return false;
    if ((b & RTC_B_PIE) && hz) {
        *at = tick_time(tick_index(now, hz) + 1, hz);
        found = true;
    }
    if (b & RTC_B_SET)
        return found;
    struct rtc_cmos_ts update = {now.sec + 1, 0};
    if ((b & RTC_B_UIE) && (!found || ts_cmp(update, *at) < 0)) {
        *at = update;
        found = true;
    }
    if (b & RTC_B_AIE) {
        int64_t alarm = rtc_alarm_next(rtc, now.sec);
        struct rtc_cmos_ts t = {alarm, 0};
        if (alarm >= 0 && (!found || ts_cmp(t, *at) < 0)) {
            *at = t;
            found = true;
        }
    }
    return found;
}

/* Arms or disarms the timerfd for the next event after guest time now; unless forced, no
 * system call if it is already set for that event. */
static void rtc_arm(struct rtc_cmos *rtc, struct rtc_cmos_ts now, bool force)
{
    struct rtc_cmos_ts at = {0, 0};
    bool want = rtc_next_event(rtc, now, &at);
    struct itimerspec its = {{0, 0}, {0, 0}};

    if (!force && want == rtc->armed && (!want || ts_cmp(at, rtc->armed_at) == 0))
        return;
    if (want) {
        int64_t mono = rtc->clock.monotonic_ns(rtc->clock.ctx);
        int64_t deadline = mono + ts_delta_ns(at, now);
        if (deadline < rtc->last_fire_ns + TIMER_MIN_NS)
            deadline = rtc->last_fire_ns + TIMER_MIN_NS;
        int64_t rel = deadline > mono ? deadline - mono : 1; /* 0 would disarm */
        its.it_value.tv_sec = rel / NS_PER_SEC;
        its.it_value.tv_nsec = rel % NS_PER_SEC;
        rtc->deadline_ns = deadline;
    }
    /* Fails only for a bad fd or value, neither of which can happen here. */
    timerfd_settime(rtc->timer_fd, 0, &its, NULL);
    rtc->armed = want;
    rtc->armed_at = at;
}

/* After any change: the line follows the flags, the timer the next event. */
static void rtc_update(struct rtc_cmos *rtc, struct rtc_cmos_ts now)
{
    rtc_update_irq(rtc);
    rtc_arm(rtc, now, false);
}

static bool rtc_uip(struct rtc_cmos *rtc, struct rtc_cmos_ts now)
{
    return !rtc->halted && !(rtc->cmos[RTC_REG_B] & RTC_B_SET) && now.nsec >= NS_PER_SEC - UIP_NS;
}

static uint8_t rtc_read_reg(struct rtc_cmos *rtc, unsigned reg)
{
    struct rtc_cmos_ts now = rtc_now(rtc);
    uint8_t v;

    switch (reg) {
    case RTC_REG_A:
        return (uint8_t)(rtc->cmos[RTC_REG_A] | (rtc_uip(rtc, now) ? RTC_A_UIP : 0));
    case RTC_REG_C:
        rtc_sync(rtc, now);
        v = rtc->flags;
        if (v & rtc->cmos[RTC_REG_B] & RTC_C_EVENTS)
            v |= RTC_C_IRQF;
        rtc->flags = 0;
        rtc_update(rtc, now);
        return v;
    case RTC_REG_D:
        return RTC_D_VRT;
    default:
        if (is_time_reg(reg) && !(rtc->cmos[RTC_REG_B] & RTC_B_SET))
            return rtc_time_reg(rtc, now.sec, reg);
        return rtc->cmos[reg];
    }
}

static void rtc_write_a(struct rtc_cmos *rtc, uint8_t v)
{
    struct rtc_cmos_ts now = rtc_now(rtc);
    bool was_halted = rtc->halted;

    rtc_sync(rtc, now);
    rtc->cmos[RTC_REG_A] = v & ~RTC_A_UIP; /* UIP is read-only */
    bool halt = (v & RTC_A_DV_MASK) >> RTC_A_DV_SHIFT >= 3;
    if (halt && !was_halted) {
        rtc->frozen = now;
        rtc->halted = true;
    } else if (!halt && was_halted) {
        rtc->halted = false;
        rtc_set_now(rtc, (struct rtc_cmos_ts){rtc->frozen.sec, RESTART_PHASE_NS});
        rtc->synced = rtc_now(rtc);
    }
    rtc_update(rtc, rtc->synced);
}

static void rtc_write_b(struct rtc_cmos *rtc, uint8_t v)
{
    struct rtc_cmos_ts now = rtc_now(rtc);
    uint8_t old = rtc->cmos[RTC_REG_B];

    rtc_sync(rtc, now);
    if ((v & RTC_B_SET) && !(old & RTC_B_SET)) {
        rtc_freeze(rtc, now.sec); /* in the mode of the moment */
        v &= ~RTC_B_UIE;          /* "the SET bit going high clears UIE" (MC146818A) */
    }
    rtc->cmos[RTC_REG_B] = v;
    if (!(v & RTC_B_SET) && (old & RTC_B_SET))
        rtc_thaw(rtc); /* in the mode just written */
    rtc_update(rtc, rtc->synced);
}

/* A time register written while SET is clear: the time changes at once. */
static void rtc_write_time(struct rtc_cmos *rtc, unsigned reg, uint8_t v)
{
    struct rtc_cmos_ts now = rtc_now(rtc);

    rtc_sync(rtc, now);
    rtc_freeze(rtc, now.sec);
    rtc->cmos[reg] = v;
    rtc_thaw(rtc);
    rtc_update(rtc, rtc->synced);
}

/* An alarm byte: the updates so far compared with the old alarm; the timer follows the new. */
static void rtc_write_alarm(struct rtc_cmos *rtc, unsigned reg, uint8_t v)
{
    struct rtc_cmos_ts now = rtc_now(rtc);

    rtc_sync(rtc, now);
    rtc->cmos[reg] = v;
    rtc_update(rtc, now);
}

static void rtc_write_reg(struct rtc_cmos *rtc, unsigned reg, uint8_t v)
{
    switch (reg) {
    case RTC_REG_A:
        rtc_write_a(rtc, v);
        break;
    case RTC_REG_B:
        rtc_write_b(rtc, v);
        break;
    case RTC_REG_C:
    case RTC_REG_D:
        break; /* read-only */
    case RTC_SECONDS_ALARM:
    case RTC_MINUTES_ALARM:
    case RTC_HOURS_ALARM:
        rtc_write_alarm(rtc, reg, v);
        break;
    default:
        if (is_time_reg(reg) && !(rtc->cmos[RTC_REG_B] & RTC_B_SET))
            rtc_write_time(rtc, reg, v);
        else
            rtc->cmos[reg] = v; /* frozen time registers, CMOS RAM */
        break;
    }
}

static struct rtc_cmos *to_rtc(struct device *dev)
{
    return container_of(dev, struct rtc_cmos, dev);
}

/* Port 0x70 is write-only (it reads all-ones, as on a PC/AT); 0x71 is the selected register. */
static uint64_t rtc_cmos_read(struct device *dev, uint64_t offset, unsigned size)
{
    struct rtc_cmos *rtc = to_rtc(dev);
    uint64_t v = 0;

    for (unsigned i = 0; i < size; i++) {
        uint8_t byte = 0xff;
        if (offset + i == RTC_CMOS_DATA_PORT - RTC_CMOS_INDEX_PORT)
            byte = rtc_read_reg(rtc, rtc->index);
        v |= (uint64_t)byte << (8 * i);
    }
    return v;
}

static void rtc_cmos_write(struct device *dev, uint64_t offset, uint64_t value, unsigned size)
{
    struct rtc_cmos *rtc = to_rtc(dev);

    for (unsigned i = 0; i < size; i++) {
        uint8_t byte = (uint8_t)(value >> (8 * i));
        if (offset + i == 0) {
            rtc->index = byte & RTC_INDEX_MASK;
            rtc->nmi_masked = byte & RTC_INDEX_NMI_MASK;
        } else if (offset + i == RTC_CMOS_DATA_PORT - RTC_CMOS_INDEX_PORT) {
            rtc_write_reg(rtc, rtc->index, byte);
        }
    }
}

/* The RESET pin: clears the interrupt enables, SQWE and the flags; the clock and RAM stay. */
static void rtc_cmos_reset(struct device *dev)
{
    struct rtc_cmos *rtc = to_rtc(dev);

    rtc->cmos[RTC_REG_B] &= ~(RTC_B_PIE | RTC_B_AIE | RTC_B_UIE | RTC_B_SQWE);
    rtc->flags = 0;
    rtc->synced = rtc_now(rtc);
    rtc_update(rtc, rtc->synced);
}

static const struct dev_ops rtc_cmos_ops = {
    .read = rtc_cmos_read,
    .write = rtc_cmos_write,
    .reset = rtc_cmos_reset,
};

static void put16(uint8_t *cmos, unsigned lo, uint64_t v)
{
    cmos[lo] = (uint8_t)v;
    cmos[lo + 1] = (uint8_t)(v >> 8);
}

/* The PC/AT checksum: the sum of 0x10-0x2d, big-endian at 0x2e. */
static void rtc_checksum(struct rtc_cmos *rtc)
{
    unsigned sum = 0;

    for (unsigned i = 0x10; i < CMOS_CHECKSUM_HI; i++)
        sum += rtc->cmos[i];
    rtc->cmos[CMOS_CHECKSUM_HI] = (uint8_t)(sum >> 8);
    rtc->cmos[CMOS_CHECKSUM_LO] = (uint8_t)sum;
}

int rtc_cmos_init(struct rtc_cmos *rtc, struct irq_line *irq, const struct rtc_cmos_clock *clock)
{
    memset(rtc, 0, sizeof(*rtc));
    rtc->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (rtc->timer_fd < 0)
        return -errno;
    device_init(&rtc->dev, "rtc_cmos", &rtc_cmos_ops);
    rtc->irq = irq;
    if (clock)
        rtc->clock = *clock;
    if (!rtc->clock.realtime_ns)
        rtc->clock.realtime_ns = host_realtime_ns;
    if (!rtc->clock.monotonic_ns)
        rtc->clock.monotonic_ns = host_monotonic_ns;
    rtc->last_fire_ns = INT64_MIN / 2;

    rtc->cmos[RTC_REG_A] = RTC_A_DEFAULT;
    rtc->cmos[RTC_REG_B] = RTC_B_DEFAULT;
    rtc->cmos[CMOS_EQUIPMENT] = EQUIPMENT;
    rtc_checksum(rtc);
    rtc->synced = rtc_now(rtc); /* offset 0: the host's UTC time */
    return 0;
}

void rtc_cmos_destroy(struct rtc_cmos *rtc)
{
    close(rtc->timer_fd);
    rtc->timer_fd = -1;
    device_destroy(&rtc->dev);
}

void rtc_cmos_set_memory(struct rtc_cmos *rtc, uint64_t below_4g, uint64_t above_4g)
{
    uint64_t base = below_4g < 640 * KiB ? below_4g / KiB : 640;
    uint64_t ext = below_4g > MiB ? (below_4g - MiB) / KiB : 0;
    uint64_t mem16 = below_4g > 16 * MiB ? (below_4g - 16 * MiB) / (64 * KiB) : 0;
    uint64_t high = above_4g / (64 * KiB);

    ext = ext > 0xffff ? 0xffff : ext;
    mem16 = mem16 > 0xffff ? 0xffff : mem16;
    high = high > 0xffffff ? 0xffffff : high;
    pthread_mutex_lock(&rtc->dev.lock);
    put16(rtc->cmos, CMOS_BASE_MEM_LO, base);
    put16(rtc->cmos, CMOS_EXT_MEM_LO, ext);
    put16(rtc->cmos, CMOS_EXT_MEM2_LO, ext);
    put16(rtc->cmos, CMOS_MEM_16M_LO, mem16);
    put16(rtc->cmos, CMOS_MEM_4G_LO, high);
    rtc->cmos[CMOS_MEM_4G_HI] = (uint8_t)(high >> 16);
    rtc_checksum(rtc);
    pthread_mutex_unlock(&rtc->dev.lock);
}

int rtc_cmos_timer_fd(struct rtc_cmos *rtc)
{
    return rtc->timer_fd;
}

void rtc_cmos_on_timer(struct rtc_cmos *rtc)
{
    uint64_t expirations;

    /* Empties the fd; EAGAIN when a vCPU re-armed it since it fired, or for a spurious call. */
    if (read(rtc->timer_fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
        return;
    pthread_mutex_lock(&rtc->dev.lock);
    rtc->timer_calls++;
    struct rtc_cmos_ts now = rtc_now(rtc);
    rtc_sync(rtc, now);
    rtc_update_irq(rtc);
    /* The cap counts deliveries: an early call (the host's realtime and monotonic clocks
     * drift apart, or step) is followed by one for the exact time that is left. */
    if (rtc->irq_level)
        rtc->last_fire_ns = rtc->clock.monotonic_ns(rtc->clock.ctx);
    rtc_arm(rtc, now, true); /* it has expired: set it again, or clear it, whatever it was */
    pthread_mutex_unlock(&rtc->dev.lock);
}

bool rtc_cmos_nmi_masked(struct rtc_cmos *rtc)
{
    pthread_mutex_lock(&rtc->dev.lock);
    bool masked = rtc->nmi_masked;
    pthread_mutex_unlock(&rtc->dev.lock);
    return masked;
}

static void put_ts(struct state_out *out, const char *sec, const char *nsec, struct rtc_cmos_ts t)
{
    state_put_u64(out, sec, (uint64_t)t.sec);
    state_put_u32(out, nsec, (uint32_t)t.nsec);
}

int rtc_cmos_save(const struct rtc_cmos *rtc, struct state_out *out)
{
    state_put_u32(out, "index", rtc->index);
    state_put_bool(out, "nmi-masked", rtc->nmi_masked);
    state_put_bytes(out, "cmos", rtc->cmos, sizeof(rtc->cmos));
    state_put_u32(out, "flags", rtc->flags);
    state_put_u32(out, "weekday-delta", rtc->wday_delta);
    put_ts(out, "time-sec", "time-nsec", rtc_now(rtc));
    put_ts(out, "offset-sec", "offset-nsec", rtc->offset);
    put_ts(out, "synced-sec", "synced-nsec", rtc->synced);
    return out->err;
}

/* A saved time (or offset) with nsec < 1e9 and sec within RTC_CMOS_STATE_MAX_SEC of 0. */
static struct rtc_cmos_ts get_ts(struct state_in *in, const char *sec, const char *nsec)
{
    uint64_t s;
    uint32_t ns;

    state_get_u64(in, sec, &s);
    state_get_u32(in, nsec, &ns);
    if ((int64_t)s < -RTC_CMOS_STATE_MAX_SEC || (int64_t)s > RTC_CMOS_STATE_MAX_SEC)
        state_invalid(in, "property '%s' is %" PRId64 " s, beyond the clock's range", sec,
                      (int64_t)s);
    if (ns >= NS_PER_SEC)
        state_invalid(in, "property '%s' is %" PRIu32 ", not under 1e9", nsec, ns);
    return in->err ? (struct rtc_cmos_ts){0, 0} : (struct rtc_cmos_ts){(int64_t)s, ns};
}

/* CMOS bytes the chip cannot hold: UIP stored in A (it is computed), anything in C or D. */
static void check_cmos(struct state_in *in, const uint8_t *cmos)
{
    if (cmos[RTC_REG_A] & RTC_A_UIP)
        state_invalid(in, "property 'cmos': register A %#x has UIP, which is read-only",
                      cmos[RTC_REG_A]);
    if (cmos[RTC_REG_C] || cmos[RTC_REG_D])
        state_invalid(in, "property 'cmos': registers C and D are not stored (%#x, %#x)",
                      cmos[RTC_REG_C], cmos[RTC_REG_D]);
}

int rtc_cmos_restore(struct rtc_cmos *rtc, struct state_in *in)
{
    uint32_t index, flags, wday_delta;
    uint8_t cmos[RTC_CMOS_SIZE];
    bool nmi_masked;

    state_get_bits(in, "index", RTC_INDEX_MASK, &index);
    state_get_bool(in, "nmi-masked", &nmi_masked);
    state_get_bytes(in, "cmos", cmos, sizeof(cmos));
    check_cmos(in, cmos);
    state_get_bits(in, "flags", RTC_C_EVENTS, &flags);
    state_get_u32(in, "weekday-delta", &wday_delta);
    if (wday_delta >= 7)
        state_invalid(in, "property 'weekday-delta' is %" PRIu32 ", not a day of the week",
                      wday_delta);
    struct rtc_cmos_ts time = get_ts(in, "time-sec", "time-nsec");
    struct rtc_cmos_ts offset = get_ts(in, "offset-sec", "offset-nsec");
    struct rtc_cmos_ts synced = get_ts(in, "synced-sec", "synced-nsec");
    if (in->err)
        return in->err;

    pthread_mutex_lock(&rtc->dev.lock);
    rtc->index = (uint8_t)index;
    rtc->nmi_masked = nmi_masked;
    memcpy(rtc->cmos, cmos, sizeof(cmos));
    rtc->flags = (uint8_t)flags;
    rtc->wday_delta = wday_delta;
    rtc->halted = (cmos[RTC_REG_A] & RTC_A_DV_MASK) >> RTC_A_DV_SHIFT >= 3;
    rtc->frozen = time;
    rtc->offset = offset;
    rtc->synced = synced;
    /* As rtc_cmos_on_timer(): the events up to now, the line, and the timer for the next. */
    struct rtc_cmos_ts now = rtc_now(rtc);
    rtc_sync(rtc, now);
    rtc_update_irq(rtc);
    rtc_arm(rtc, now, true);
    pthread_mutex_unlock(&rtc->dev.lock);
    return 0;
}

/* The machine's RTC (hwdev.h): ports 0x70-0x71, IRQ 8, its timer on the loop. */
struct rtc_cmos_hw {
    struct hwdev hw; /* first (hwdev_ops.size) */
    struct kvm_irq_gsi irq;
    struct rtc_cmos rtc;
    bool rtc_ready;
    struct event *ev_timer;
};

static void rtc_cmos_hw_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    rtc_cmos_on_timer(arg);
}

/* Undoes what realize did, as far as it got. */
static void rtc_cmos_hw_release(struct rtc_cmos_hw *d)
{
    if (d->ev_timer)
        event_free(d->ev_timer);
    d->ev_timer = NULL;
    if (d->rtc_ready)
        rtc_cmos_destroy(&d->rtc);
    d->rtc_ready = false;
}

static int rtc_cmos_hw_realize(struct hwdev *hw, struct errbuf *eb)
{
    struct rtc_cmos_hw *d = container_of(hw, struct rtc_cmos_hw, hw);
    const struct hwdev_host *host = hw->host;

    kvm_irq_gsi_init(&d->irq, host->vm_fd, PLAT_RTC_IRQ);
    int ret = rtc_cmos_init(&d->rtc, &d->irq.line, NULL);
    if (ret)
        return err_set(eb, ret, "cannot set up the RTC: %s", strerror(-ret));
    d->rtc_ready = true;
    uint64_t below = gm_low_end(host->mem);
    rtc_cmos_set_memory(&d->rtc, below, host->mem->size - below);
    d->ev_timer = event_new(host->base, rtc_cmos_timer_fd(&d->rtc), EV_READ | EV_PERSIST,
                            rtc_cmos_hw_on_timer, &d->rtc);
    if (!d->ev_timer || event_add(d->ev_timer, NULL)) {
        rtc_cmos_hw_release(d);
        return err_set(eb, -ENOMEM, "cannot watch the RTC's timer");
    }
    ret = bus_register(host->pio, RTC_CMOS_INDEX_PORT, RTC_CMOS_NR_PORTS, &d->rtc.dev);
    if (ret) {
        rtc_cmos_hw_release(d);
        return err_set(eb, ret, "cannot register the RTC: %s", strerror(-ret));
    }
    return 0;
}

static int rtc_cmos_hw_save(struct hwdev *hw, struct state_out *out)
{
    return rtc_cmos_save(&container_of(hw, struct rtc_cmos_hw, hw)->rtc, out);
}

static int rtc_cmos_hw_restore(struct hwdev *hw, struct state_in *in)
{
    return rtc_cmos_restore(&container_of(hw, struct rtc_cmos_hw, hw)->rtc, in);
}

static void rtc_cmos_hw_destroy(struct hwdev *hw)
{
    struct rtc_cmos_hw *d = container_of(hw, struct rtc_cmos_hw, hw);
    if (hw->realized)
        (void)bus_unregister(hw->host->pio, RTC_CMOS_INDEX_PORT);
    rtc_cmos_hw_release(d);
}

const struct hwdev_ops rtc_cmos_isa = {
    .type = "rtc-cmos",
    .compatible = RTC_CMOS_STATE_COMPATIBLE,
    .size = sizeof(struct rtc_cmos_hw),
    .name = "rtc",
    .realize = rtc_cmos_hw_realize,
    .save = rtc_cmos_hw_save,
    .restore = rtc_cmos_hw_restore,
    .destroy = rtc_cmos_hw_destroy,
};
