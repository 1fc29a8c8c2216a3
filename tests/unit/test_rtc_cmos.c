/* CMOS RTC: the time in every mode against a fake host clock, setting it, UIP, the
 * interrupts and register C, the timer, the NMI mask and CMOS RAM. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>

#include "petrel/rtc_cmos.h"
#include "fake_irq.h"
#include "fake_state.h"

#define NS  1000000000LL
#define MS  1000000LL
#define US  1000LL
#define BCD RTC_B_24H /* register B: BCD, 24-hour (the default) */
#define BIN (RTC_B_24H | RTC_B_DM)

struct fixture {
    struct rtc_cmos rtc;
    struct fake_irq irq;
    int64_t realtime, monotonic;
};

static int64_t fake_realtime(void *ctx)
{
    return ((struct fixture *)ctx)->realtime;
}

static int64_t fake_monotonic(void *ctx)
{
    return ((struct fixture *)ctx)->monotonic;
}

/* Host UTC time as ns since the epoch. */
static int64_t utc(int y, int mon, int d, int h, int min, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mon - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = min,
                    .tm_sec = s};
    return (int64_t)timegm(&tm) * NS;
}

/* The device starts at the host's time 2026-11-25 23:59:58 UTC, a Wednesday. */
static int setup(void **state)
{
    struct fixture *f = test_calloc(1, sizeof(*f));
    f->irq.line.set_level = fake_irq_set;
    f->realtime = utc(2026, 11, 25, 23, 59, 58);
    f->monotonic = 1000 * NS;
    struct rtc_cmos_clock clock = {fake_realtime, fake_monotonic, f};
    assert_int_equal(rtc_cmos_init(&f->rtc, &f->irq.line, &clock), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(f->irq.repeats, 0); /* the device reports changes only */
    rtc_cmos_destroy(&f->rtc);
    test_free(f);
    return 0;
}

static void outb(struct fixture *f, uint16_t port, uint8_t v)
{
    f->rtc.dev.ops->write(&f->rtc.dev, port - RTC_CMOS_INDEX_PORT, v, 1);
}

static uint8_t inb(struct fixture *f, uint16_t port)
{
    return (uint8_t)f->rtc.dev.ops->read(&f->rtc.dev, port - RTC_CMOS_INDEX_PORT, 1);
}

static uint8_t rd(struct fixture *f, uint8_t reg)
{
    outb(f, RTC_CMOS_INDEX_PORT, reg);
    return inb(f, RTC_CMOS_DATA_PORT);
}

static void wr(struct fixture *f, uint8_t reg, uint8_t v)
{
    outb(f, RTC_CMOS_INDEX_PORT, reg);
    outb(f, RTC_CMOS_DATA_PORT, v);
}

/* Both host clocks move on by ns, as they do. */
static void advance(struct fixture *f, int64_t ns)
{
    f->realtime += ns;
    f->monotonic += ns;
}

/* Checks the time registers, most significant first: century, year, month, day, h, m, s. */
static void assert_time(struct fixture *f, uint8_t cc, uint8_t yy, uint8_t mo, uint8_t dd,
                        uint8_t hh, uint8_t mm, uint8_t ss)
{
    uint8_t got[7] = {rd(f, RTC_CENTURY),      rd(f, RTC_YEAR),  rd(f, RTC_MONTH),
                      rd(f, RTC_DAY_OF_MONTH), rd(f, RTC_HOURS), rd(f, RTC_MINUTES),
                      rd(f, RTC_SECONDS)};
    uint8_t want[7] = {cc, yy, mo, dd, hh, mm, ss};
    for (unsigned i = 0; i < 7; i++) {
        if (got[i] != want[i])
            fail_msg("time register %u: read %#x, expected %#x (%02x%02x-%02x-%02x %02x:%02x:%02x)",
                     i, got[i], want[i], got[0], got[1], got[2], got[3], got[4], got[5], got[6]);
    }
}

/* Whether the real timerfd is armed. */
static bool timerfd_armed(struct fixture *f)
{
    struct itimerspec its;
    assert_int_equal(timerfd_gettime(rtc_cmos_timer_fd(&f->rtc), &its), 0);
    return its.it_value.tv_sec || its.it_value.tv_nsec;
}

/* The armed deadline, relative to the fake monotonic clock. (The real timerfd was armed
 * for as long in real time, so it may have expired already: it is not checked here.) */
static int64_t timer_in(struct fixture *f)
{
    assert_true(f->rtc.armed);
    return f->rtc.deadline_ns - f->monotonic;
}

static void assert_disarmed(struct fixture *f)
{
    assert_false(f->rtc.armed);
    assert_false(timerfd_armed(f));
}

/* Moves both clocks to the armed deadline and runs the loop's callback. */
static void fire(struct fixture *f)
{
    advance(f, timer_in(f));
    rtc_cmos_on_timer(&f->rtc);
}

static void reads_host_time_bcd(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(rd(f, RTC_REG_A), RTC_A_DEFAULT);
    assert_int_equal(rd(f, RTC_REG_B), RTC_B_24H);
    assert_int_equal(rd(f, RTC_REG_D), RTC_D_VRT);
    assert_time(f, 0x20, 0x26, 0x11, 0x25, 0x23, 0x59, 0x58);
    assert_int_equal(rd(f, RTC_DAY_OF_WEEK), 4); /* Wednesday; 1 = Sunday */
    advance(f, 999 * MS);
    assert_time(f, 0x20, 0x26, 0x11, 0x25, 0x23, 0x59, 0x58);
    advance(f, 1 * MS);
    assert_time(f, 0x20, 0x26, 0x11, 0x25, 0x23, 0x59, 0x59);
    advance(f, 1 * NS);
    assert_time(f, 0x20, 0x26, 0x11, 0x26, 0x00, 0x00, 0x00);
    assert_int_equal(rd(f, RTC_DAY_OF_WEEK), 5);
}

static void reads_binary_and_12_hour(void **state)
{
    struct fixture *f = *state;

    wr(f, RTC_REG_B, BIN);
    assert_time(f, 20, 26, 11, 25, 23, 59, 58);
    wr(f, RTC_REG_B, RTC_B_DM); /* binary, 12-hour: 11 PM */
    assert_int_equal(rd(f, RTC_HOURS), 11 | RTC_HOUR_PM);
    wr(f, RTC_REG_B, 0); /* BCD, 12-hour */
    assert_int_equal(rd(f, RTC_HOURS), 0x11 | RTC_HOUR_PM);
    advance(f, 2 * NS); /* midnight is 12 AM */
    assert_time(f, 0x20, 0x26, 0x11, 0x26, 0x12, 0x00, 0x00);
    wr(f, RTC_REG_B, RTC_B_DM);
    assert_int_equal(rd(f, RTC_HOURS), 12);
    advance(f, 3600 * NS); /* 1 AM */
    assert_int_equal(rd(f, RTC_HOURS), 1);
    advance(f, 11 * 3600 * NS); /* noon is 12 PM */
    assert_int_equal(rd(f, RTC_HOURS), 12 | RTC_HOUR_PM);
    wr(f, RTC_REG_B, 0);
    assert_int_equal(rd(f, RTC_HOURS), 0x12 | RTC_HOUR_PM);
    advance(f, 3600 * NS);
    assert_int_equal(rd(f, RTC_HOURS), 0x01 | RTC_HOUR_PM);
    wr(f, RTC_REG_B, BCD);
    assert_int_equal(rd(f, RTC_HOURS), 0x13);
}

static void rolls_over_year_century_and_leap_days(void **state)
{
    struct fixture *f = *state;

    f->realtime = utc(2026, 12, 31, 23, 59, 59);
    assert_time(f, 0x20, 0x26, 0x12, 0x31, 0x23, 0x59, 0x59);
    assert_int_equal(rd(f, RTC_DAY_OF_WEEK), 5); /* Thursday */
    advance(f, NS);
    assert_time(f, 0x20, 0x27, 0x01, 0x01, 0x00, 0x00, 0x00);
    assert_int_equal(rd(f, RTC_DAY_OF_WEEK), 6);

    f->realtime = utc(2099, 12, 31, 23, 59, 59) + NS;
    assert_time(f, 0x21, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00);
    f->realtime = utc(2028, 2, 28, 23, 59, 59) + NS;
    assert_time(f, 0x20, 0x28, 0x02, 0x29, 0x00, 0x00, 0x00);
    f->realtime = utc(2100, 2, 28, 23, 59, 59) + NS; /* 2100 is not a leap year */
    assert_time(f, 0x21, 0x00, 0x03, 0x01, 0x00, 0x00, 0x00);
    f->realtime = utc(2000, 2, 28, 23, 59, 59) + NS; /* 2000 is */
    assert_time(f, 0x20, 0x00, 0x02, 0x29, 0x00, 0x00, 0x00);
    wr(f, RTC_REG_B, BIN);
    assert_time(f, 20, 0, 2, 29, 0, 0, 0);
}

/* What Linux's mc146818_set_time() does: SET, divider reset, the registers, then both back. */
static void set_time_like_linux(void **state)
{
    struct fixture *f = *state;

    f->realtime += 300 * MS;
    uint8_t b = rd(f, RTC_REG_B);
    wr(f, RTC_REG_B, b | RTC_B_SET);
    uint8_t a = rd(f, RTC_REG_A);
    wr(f, RTC_REG_A, a | 0x70);
    wr(f, RTC_SECONDS, 0x56);
    wr(f, RTC_MINUTES, 0x34);
    wr(f, RTC_HOURS, 0x12);
    wr(f, RTC_DAY_OF_MONTH, 0x15);
    wr(f, RTC_MONTH, 0x06);
    wr(f, RTC_YEAR, 0x30);
    wr(f, RTC_CENTURY, 0x20);
    /* Frozen while SET is 1: what was written, whatever the clock does. */
    advance(f, 5 * NS);
    assert_time(f, 0x20, 0x30, 0x06, 0x15, 0x12, 0x34, 0x56);
    assert_int_equal(rd(f, RTC_DAY_OF_WEEK), 4);
    wr(f, RTC_REG_B, b);
    advance(f, 3 * NS); /* the divider is still held in reset */
    assert_time(f, 0x20, 0x30, 0x06, 0x15, 0x12, 0x34, 0x56);
    wr(f, RTC_REG_A, a);
    /* The first update comes half a second after the divider runs again. */
    advance(f, 499 * MS);
    assert_int_equal(rd(f, RTC_SECONDS), 0x56);
    advance(f, 1 * MS);
    assert_int_equal(rd(f, RTC_SECONDS), 0x57);
    advance(f, 3600 * NS);
    assert_time(f, 0x20, 0x30, 0x06, 0x15, 0x13, 0x34, 0x57);
    /* Linux does not write the day of week: the chip's counter keeps its own value. */
    assert_int_equal(rd(f, RTC_DAY_OF_WEEK), 4);
}

/* Without the divider reset the sub-second phase stays; the weekday counter is the guest's. */
static void set_time_keeps_phase_and_weekday(void **state)
{
    struct fixture *f = *state;

    f->realtime += 300 * MS;
    wr(f, RTC_REG_B, BCD | RTC_B_SET);
    wr(f, RTC_HOURS, 0x23);
    wr(f, RTC_MINUTES, 0x59);
    wr(f, RTC_SECONDS, 0x10);
    wr(f, RTC_DAY_OF_WEEK, 7); /* Saturday, whatever the date says */
    wr(f, RTC_REG_B, BCD);
    assert_int_equal(rd(f, RTC_SECONDS), 0x10);
    advance(f, 699 * MS);
    assert_int_equal(rd(f, RTC_SECONDS), 0x10);
    advance(f, 1 * MS);
    assert_int_equal(rd(f, RTC_SECONDS), 0x11);
    assert_int_equal(rd(f, RTC_DAY_OF_WEEK), 7);
    advance(f, 49 * NS); /* past midnight: the counter wraps to Sunday */
    assert_time(f, 0x20, 0x26, 0x11, 0x26, 0x00, 0x00, 0x00);
    assert_int_equal(rd(f, RTC_DAY_OF_WEEK), 1);
}

/* A write with SET clear changes the time at once; the clock goes on from there. */
static void write_without_set_takes_effect(void **state)
{
    struct fixture *f = *state;

    wr(f, RTC_MINUTES, 0x07);
    assert_time(f, 0x20, 0x26, 0x11, 0x25, 0x23, 0x07, 0x58);
    wr(f, RTC_YEAR, 0x31);
    wr(f, RTC_REG_B, BIN);
    wr(f, RTC_MONTH, 2);
    assert_time(f, 20, 31, 2, 25, 23, 7, 58);
    advance(f, 2 * NS);
    assert_time(f, 20, 31, 2, 25, 23, 8, 0);
}

/* Nonsense from the guest is clamped into a valid date when SET is cleared. */
static void invalid_values_are_clamped(void **state)
{
    struct fixture *f = *state;

    wr(f, RTC_REG_B, BCD | RTC_B_SET);
    wr(f, RTC_YEAR, 0x9a); /* not BCD: counts as 100, clamped to 99 */
    wr(f, RTC_MONTH, 0x02);
    wr(f, RTC_DAY_OF_MONTH, 0x31);
    wr(f, RTC_HOURS, 0x25);
    wr(f, RTC_MINUTES, 0xff);
    wr(f, RTC_SECONDS, 0x60);
    assert_int_equal(rd(f, RTC_YEAR), 0x9a); /* frozen: exactly what was written */
    wr(f, RTC_REG_B, BCD);
    assert_time(f, 0x20, 0x99, 0x02, 0x28, 0x23, 0x59, 0x59);

    wr(f, RTC_REG_B, RTC_B_DM | RTC_B_SET); /* binary, 12-hour */
    wr(f, RTC_MONTH, 0);
    wr(f, RTC_DAY_OF_MONTH, 0);
    wr(f, RTC_HOURS, 0x80 | 13); /* no 13 PM: 12 PM */
    wr(f, RTC_CENTURY, 200);
    wr(f, RTC_REG_B, RTC_B_DM);
    assert_time(f, 99, 99, 1, 1, 12 | RTC_HOUR_PM, 59, 59);
}

static void uip_window_before_each_second(void **state)
{
    struct fixture *f = *state;

    advance(f, NS - 244 * US - 1);
    assert_false(rd(f, RTC_REG_A) & RTC_A_UIP);
    advance(f, 1);
    assert_int_equal(rd(f, RTC_REG_A), RTC_A_UIP | RTC_A_DEFAULT);
    assert_int_equal(rd(f, RTC_SECONDS), 0x58);
    advance(f, 244 * US - 1);
    assert_true(rd(f, RTC_REG_A) & RTC_A_UIP);
    advance(f, 1);
    assert_false(rd(f, RTC_REG_A) & RTC_A_UIP);
    assert_int_equal(rd(f, RTC_SECONDS), 0x59);

    /* A reader polling every 10 us, as Linux's mc146818_avoid_UIP() does, waits briefly. */
    advance(f, NS - 100 * US);
    unsigned polls = 0;
    while (rd(f, RTC_REG_A) & RTC_A_UIP) {
        assert_true(++polls < 30);
        advance(f, 10 * US);
    }
    assert_int_equal(rd(f, RTC_SECONDS), 0x00);

    /* No UIP while SET is 1 or the divider is stopped. */
    advance(f, NS - 100 * US);
    assert_true(rd(f, RTC_REG_A) & RTC_A_UIP);
    wr(f, RTC_REG_B, BCD | RTC_B_SET);
    assert_false(rd(f, RTC_REG_A) & RTC_A_UIP);
    wr(f, RTC_REG_B, BCD);
    wr(f, RTC_REG_A, 0x60 | 6);
    assert_int_equal(rd(f, RTC_REG_A), 0x66);
    /* UIP is read-only. */
    wr(f, RTC_REG_A, RTC_A_UIP | RTC_A_DEFAULT);
    assert_int_equal(f->rtc.cmos[RTC_REG_A], RTC_A_DEFAULT);
}

/* Register C: flags set by events, IRQF when an enabled one is set, all cleared by a read
 * that also drops IRQ 8, which was held until then. */
static void register_c_clear_on_read_and_irq(void **state)
{
    struct fixture *f = *state;

    wr(f, RTC_REG_B, BCD | RTC_B_UIE);
    assert_int_equal(timer_in(f), 1 * NS);
    fire(f);
    assert_true(f->irq.level);
    assert_int_equal(f->irq.raises, 1);
    assert_disarmed(f); /* nothing more to deliver until the guest reads C */
    advance(f, 5 * NS);
    assert_true(f->irq.level);
    /* PF too: the 1024 Hz rate runs, though its interrupt is not enabled; AF as well: the
     * alarm bytes are 0, and midnight has passed. */
    assert_int_equal(rd(f, RTC_REG_C), RTC_C_IRQF | RTC_C_PF | RTC_C_AF | RTC_C_UF);
    assert_false(f->irq.level);
    assert_int_equal(rd(f, RTC_REG_C), 0);
    assert_int_equal(timer_in(f), 1 * NS);
    /* Writes to C and D are ignored. */
    wr(f, RTC_REG_C, 0xff);
    wr(f, RTC_REG_D, 0x00);
    assert_int_equal(rd(f, RTC_REG_C), 0);
    assert_int_equal(rd(f, RTC_REG_D), RTC_D_VRT);
    fire(f);
    assert_int_equal(f->irq.raises, 2);
    /* Disabling the interrupt drops the line (IRQF = UF.UIE) and the timer. */
    wr(f, RTC_REG_B, BCD);
    assert_false(f->irq.level);
    assert_disarmed(f);
    assert_int_equal(rd(f, RTC_REG_C), RTC_C_PF | RTC_C_UF);
}

/* A guest that enables no RTC interrupt causes no wakeup, but still sees the flags. */
static void flags_without_interrupts_need_no_timer(void **state)
{
    struct fixture *f = *state;

    assert_disarmed(f);
    for (unsigned i = 0; i < 20; i++) {
        advance(f, 250 * MS);
        rd(f, RTC_REG_A);
        rd(f, RTC_SECONDS);
        wr(f, RTC_SECONDS_ALARM, 0);
        assert_disarmed(f);
    }
    /* The alarm (00:00:00) passed at midnight: AF too. */
    assert_int_equal(rd(f, RTC_REG_C), RTC_C_PF | RTC_C_AF | RTC_C_UF);
    assert_int_equal(rd(f, RTC_REG_C), 0);
    wr(f, RTC_REG_A, 0x20); /* rate 0: no PF */
    advance(f, 2 * NS);
    assert_int_equal(rd(f, RTC_REG_C), RTC_C_UF);
    wr(f, RTC_REG_B, BCD | RTC_B_PIE); /* PIE with rate 0: nothing to arm */
    assert_disarmed(f);
    assert_int_equal(f->irq.raises, 0);
    assert_int_equal(f->rtc.timer_calls, 0);
}

static void periodic_interrupt_at_rate(void **state)
{
    struct fixture *f = *state;

    f->realtime += 100 * MS;
    wr(f, RTC_REG_A, 0x20 | 15); /* 2 Hz: ticks at .0 and .5 */
    rd(f, RTC_REG_C);
    wr(f, RTC_REG_B, BCD | RTC_B_PIE);
    assert_int_equal(timer_in(f), 400 * MS);
    advance(f, 400 * MS - 1);
    rtc_cmos_on_timer(&f->rtc); /* early (the host clocks are not exact): nothing yet */
    assert_false(f->irq.level);
    assert_int_equal(timer_in(f), 1);
    advance(f, 1);
    rtc_cmos_on_timer(&f->rtc);
    assert_true(f->irq.level);
    assert_int_equal(rd(f, RTC_REG_C), RTC_C_IRQF | RTC_C_PF);
    assert_int_equal(timer_in(f), 500 * MS);

    /* Rates 1 and 2 are 256 and 128 Hz, like 8 and 9. */
    static const struct {
        uint8_t rate;
        int64_t period_ps;
    } rates[] = {{1, 3906250000}, {8, 3906250000}, {2, 7812500000},   {9, 7812500000},
                 {6, 976562500},  {7, 1953125000}, {14, 250000000000}};
    for (unsigned i = 0; i < ARRAY_SIZE(rates); i++) {
        wr(f, RTC_REG_A, 0x20 | rates[i].rate);
        rd(f, RTC_REG_C);
        /* The next tick on the grid of periods since the second began. */
        int64_t into = (f->realtime % NS) * 1000;
        int64_t next_ps = (into / rates[i].period_ps + 1) * rates[i].period_ps;
        int64_t want = (next_ps + 999) / 1000 - f->realtime % NS;
        if (want < NS / RTC_CMOS_TIMER_MAX_HZ)
            want = NS / RTC_CMOS_TIMER_MAX_HZ; /* within the cap after the last call */
        assert_int_equal(timer_in(f), want);
        fire(f);
        assert_true(f->irq.level);
        assert_int_equal(rd(f, RTC_REG_C), RTC_C_IRQF | RTC_C_PF);
        assert_false(f->irq.level);
    }
}

/* 8192 Hz asked for: the timer runs at most 1024 times a second, and each time PF is set. */
static void high_periodic_rate_is_capped(void **state)
{
    struct fixture *f = *state;

    wr(f, RTC_REG_A, 0x20 | 3);
    rd(f, RTC_REG_C);
    wr(f, RTC_REG_B, BCD | RTC_B_PIE);
    int64_t end = f->monotonic + NS;
    unsigned fires = 0;
    while (f->monotonic + timer_in(f) <= end) {
        fire(f);
        fires++;
        assert_true(f->irq.level);
        assert_int_equal(rd(f, RTC_REG_C), RTC_C_IRQF | RTC_C_PF);
    }
    assert_in_range(fires, RTC_CMOS_TIMER_MAX_HZ - 2, RTC_CMOS_TIMER_MAX_HZ);
    assert_int_equal(f->rtc.timer_calls, fires);
    assert_int_equal(f->irq.raises, fires);
}

static void alarm_with_dont_care_fields(void **state)
{
    struct fixture *f = *state;

    /* hh:mm:30 for any hour and minute: first 2026-11-26 00:00:30, 32 s away. */
    wr(f, RTC_HOURS_ALARM, 0xff);
    wr(f, RTC_MINUTES_ALARM, RTC_ALARM_DONTCARE);
    wr(f, RTC_SECONDS_ALARM, 0x30);
    rd(f, RTC_REG_C);
    wr(f, RTC_REG_B, BCD | RTC_B_AIE);
    assert_int_equal(timer_in(f), 32 * NS);
    fire(f);
    assert_true(f->irq.level);
    assert_time(f, 0x20, 0x26, 0x11, 0x26, 0x00, 0x00, 0x30);
    assert_int_equal(rd(f, RTC_REG_C) & ~RTC_C_PF, RTC_C_IRQF | RTC_C_AF | RTC_C_UF);
    assert_int_equal(timer_in(f), 60 * NS);

    /* A full match in 12-hour mode: 12:01:00 AM is 00:01:00, 30 s on. */
    wr(f, RTC_REG_B, RTC_B_AIE);
    wr(f, RTC_HOURS_ALARM, 0x12);
    wr(f, RTC_MINUTES_ALARM, 0x01);
    wr(f, RTC_SECONDS_ALARM, 0x00);
    assert_int_equal(timer_in(f), 30 * NS);
    advance(f, 29 * NS);
    rtc_cmos_on_timer(&f->rtc);
    assert_false(f->irq.level);
    fire(f);
    assert_int_equal(rd(f, RTC_REG_C) & RTC_C_AF, RTC_C_AF);
    assert_int_equal(timer_in(f), 24 * 3600 * NS); /* the same time tomorrow */

    /* An alarm byte no time matches never fires (0x60 seconds; 0x00 is no 12-hour hour). */
    wr(f, RTC_SECONDS_ALARM, 0x60);
    assert_disarmed(f);
    wr(f, RTC_SECONDS_ALARM, 0x00);
    wr(f, RTC_HOURS_ALARM, 0x00);
    assert_disarmed(f);
    /* All don't care: every second. */
    wr(f, RTC_HOURS_ALARM, 0xc0);
    wr(f, RTC_MINUTES_ALARM, 0xc0);
    wr(f, RTC_SECONDS_ALARM, 0xc0);
    assert_int_equal(timer_in(f), NS);
    /* The flag is set without AIE as well. */
    wr(f, RTC_REG_B, 0);
    advance(f, NS);
    assert_int_equal(rd(f, RTC_REG_C) & ~RTC_C_PF, RTC_C_AF | RTC_C_UF);
}

static void update_ended_interrupt_each_second(void **state)
{
    struct fixture *f = *state;

    wr(f, RTC_REG_A, 0x20); /* no periodic rate and an alarm that never matches: only UF */
    wr(f, RTC_SECONDS_ALARM, 0x60);
    f->realtime += 700 * MS;
    rd(f, RTC_REG_C);
    wr(f, RTC_REG_B, BCD | RTC_B_UIE);
    assert_int_equal(timer_in(f), 300 * MS);
    for (uint8_t s = 0x59; s != 0x02; s = s == 0x59 ? 0x00 : s + 1) {
        fire(f);
        assert_true(f->irq.level);
        assert_int_equal(rd(f, RTC_SECONDS), s);
        assert_int_equal(rd(f, RTC_REG_C), RTC_C_IRQF | RTC_C_UF);
        assert_int_equal(timer_in(f), NS);
    }
    assert_int_equal(f->irq.raises, 3);
    /* No updates while SET is 1, and setting SET clears UIE (MC146818A). */
    wr(f, RTC_REG_B, BCD | RTC_B_UIE | RTC_B_SET);
    assert_int_equal(rd(f, RTC_REG_B), BCD | RTC_B_SET);
    assert_disarmed(f);
    advance(f, 3 * NS);
    assert_int_equal(rd(f, RTC_REG_C), 0);
    wr(f, RTC_REG_B, BCD | RTC_B_UIE);
    assert_int_equal(timer_in(f), NS);
}

static void nmi_mask_bit(void **state)
{
    struct fixture *f = *state;

    assert_false(rtc_cmos_nmi_masked(&f->rtc));
    outb(f, RTC_CMOS_INDEX_PORT, RTC_INDEX_NMI_MASK | RTC_REG_D);
    assert_true(rtc_cmos_nmi_masked(&f->rtc));
    assert_int_equal(inb(f, RTC_CMOS_DATA_PORT), RTC_D_VRT);
    outb(f, RTC_CMOS_INDEX_PORT, RTC_REG_A);
    assert_false(rtc_cmos_nmi_masked(&f->rtc));
    assert_int_equal(inb(f, RTC_CMOS_DATA_PORT), RTC_A_DEFAULT);
    assert_int_equal(inb(f, RTC_CMOS_INDEX_PORT), 0xff); /* write-only */
}

static uint16_t cmos16(struct fixture *f, uint8_t lo)
{
    return (uint16_t)(rd(f, lo) | rd(f, lo + 1) << 8);
}

static void assert_checksum(struct fixture *f)
{
    unsigned sum = 0;
    for (uint8_t i = 0x10; i < 0x2e; i++)
        sum += rd(f, i);
    assert_int_equal(rd(f, CMOS_CHECKSUM_HI) << 8 | rd(f, CMOS_CHECKSUM_LO), sum);
}

static void memory_size_bytes(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(rd(f, CMOS_EQUIPMENT), 0x06);
    assert_int_equal(rd(f, CMOS_SHUTDOWN_STATUS), 0);

    rtc_cmos_set_memory(&f->rtc, 32 * MiB, 0);
    assert_int_equal(cmos16(f, CMOS_BASE_MEM_LO), 640);
    assert_int_equal(cmos16(f, CMOS_EXT_MEM_LO), 31 * 1024);
    assert_int_equal(cmos16(f, CMOS_EXT_MEM2_LO), 31 * 1024);
    assert_int_equal(cmos16(f, CMOS_MEM_16M_LO), 256);
    assert_int_equal(rd(f, CMOS_MEM_4G_LO) | rd(f, CMOS_MEM_4G_MID) | rd(f, CMOS_MEM_4G_HI), 0);
    assert_checksum(f);

    /* 3 GiB below the hole and 5 GiB above 4 GiB. */
    rtc_cmos_set_memory(&f->rtc, 3 * GiB, 5 * GiB);
    assert_int_equal(cmos16(f, CMOS_BASE_MEM_LO), 640);
    assert_int_equal(cmos16(f, CMOS_EXT_MEM_LO), 0xffff);
    assert_int_equal(cmos16(f, CMOS_EXT_MEM2_LO), 0xffff);
    assert_int_equal(cmos16(f, CMOS_MEM_16M_LO), (3 * GiB - 16 * MiB) / (64 * KiB));
    assert_int_equal(rd(f, CMOS_MEM_4G_LO) | rd(f, CMOS_MEM_4G_MID) << 8 |
                         rd(f, CMOS_MEM_4G_HI) << 16,
                     5 * GiB / (64 * KiB));
    assert_checksum(f);

    /* Tiny, and absurdly large above 4 GiB (capped at 24 bits). */
    rtc_cmos_set_memory(&f->rtc, 512 * KiB, 1ULL << 50);
    assert_int_equal(cmos16(f, CMOS_BASE_MEM_LO), 512);
    assert_int_equal(cmos16(f, CMOS_EXT_MEM_LO), 0);
    assert_int_equal(cmos16(f, CMOS_MEM_16M_LO), 0);
    assert_int_equal(rd(f, CMOS_MEM_4G_LO) & rd(f, CMOS_MEM_4G_MID) & rd(f, CMOS_MEM_4G_HI), 0xff);
}

/* The index has 7 bits; every byte but the clock's reads back what was written. */
static void index_masking_and_cmos_ram(void **state)
{
    struct fixture *f = *state;

    outb(f, RTC_CMOS_INDEX_PORT, 0x80 | 0x40);
    outb(f, RTC_CMOS_DATA_PORT, 0x5a);
    assert_int_equal(rd(f, 0x40), 0x5a);
    outb(f, RTC_CMOS_INDEX_PORT, 0xff);
    outb(f, RTC_CMOS_DATA_PORT, 0xa7);
    assert_int_equal(rd(f, 0x7f), 0xa7);
    outb(f, RTC_CMOS_INDEX_PORT, 0x80 | RTC_CENTURY);
    assert_int_equal(inb(f, RTC_CMOS_DATA_PORT), 0x20);

    for (unsigned i = 0x0e; i < RTC_CMOS_SIZE; i++) {
        if (i != RTC_CENTURY)
            wr(f, (uint8_t)i, (uint8_t)(i ^ 0xa5));
    }
    for (unsigned i = 0x0e; i < RTC_CMOS_SIZE; i++) {
        if (i != RTC_CENTURY)
            assert_int_equal(rd(f, (uint8_t)i), i ^ 0xa5);
    }
    /* The alarm bytes are plain storage too. */
    wr(f, RTC_SECONDS_ALARM, 0x12);
    wr(f, RTC_MINUTES_ALARM, 0x34);
    wr(f, RTC_HOURS_ALARM, 0xc5);
    assert_int_equal(rd(f, RTC_SECONDS_ALARM), 0x12);
    assert_int_equal(rd(f, RTC_MINUTES_ALARM), 0x34);
    assert_int_equal(rd(f, RTC_HOURS_ALARM), 0xc5);
    assert_time(f, 0x20, 0x26, 0x11, 0x25, 0x23, 0x59, 0x58);
}

/* outw 0x70: the index in the low byte, the data in the high; inw: 0xff then the data. */
static void word_access_is_two_bytes(void **state)
{
    struct fixture *f = *state;

    f->rtc.dev.ops->write(&f->rtc.dev, 0, 0x5a40, 2);
    assert_int_equal(rd(f, 0x40), 0x5a);
    outb(f, RTC_CMOS_INDEX_PORT, RTC_SECONDS);
    assert_int_equal(f->rtc.dev.ops->read(&f->rtc.dev, 0, 2), 0x58ff);
    assert_int_equal(f->rtc.dev.ops->read(&f->rtc.dev, 1, 4), 0xffffff58);
    f->rtc.dev.ops->write(&f->rtc.dev, 1, 0xffffff33, 4); /* the bytes past 0x71 go nowhere */
    assert_int_equal(rd(f, RTC_SECONDS), 0x33);
}

/* The RESET pin clears the enables and the flags; the clock and RAM keep going. */
static void reset_clears_enables_and_flags(void **state)
{
    struct fixture *f = *state;

    wr(f, 0x50, 0x77);
    wr(f, RTC_REG_B, BCD | RTC_B_PIE | RTC_B_AIE | RTC_B_UIE | RTC_B_SQWE);
    fire(f);
    assert_true(f->irq.level);
    f->rtc.dev.ops->reset(&f->rtc.dev);
    assert_false(f->irq.level);
    assert_disarmed(f);
    assert_int_equal(rd(f, RTC_REG_B), BCD);
    assert_int_equal(rd(f, RTC_REG_C), 0);
    assert_int_equal(rd(f, 0x50), 0x77);
    advance(f, NS);
    assert_int_equal(rd(f, RTC_SECONDS), 0x59);
}

/* The guest's clock follows the host's UTC clock, steps included; events keep coming. */
static void host_clock_step_back(void **state)
{
    struct fixture *f = *state;

    wr(f, RTC_REG_A, 0x20);
    wr(f, RTC_REG_B, BCD | RTC_B_UIE);
    fire(f);
    assert_int_equal(rd(f, RTC_REG_C), RTC_C_IRQF | RTC_C_UF);
    f->realtime -= 3600 * NS; /* NTP steps the host back an hour */
    assert_time(f, 0x20, 0x26, 0x11, 0x25, 0x22, 0x59, 0x59);
    rtc_cmos_on_timer(&f->rtc); /* the timer was set from the old time: early now */
    assert_false(f->irq.level);
    fire(f);
    assert_true(f->irq.level);
    assert_int_equal(rd(f, RTC_REG_C), RTC_C_IRQF | RTC_C_UF);
    assert_time(f, 0x20, 0x26, 0x11, 0x25, 0x23, 0x00, 0x00);
}

/* Two devices in one process do not share anything. */
static void two_devices_are_independent(void **state)
{
    struct fixture *f = *state;
    struct rtc_cmos other;

    assert_int_equal(rtc_cmos_init(&other, NULL, NULL), 0); /* the real clocks, no IRQ line */
    wr(f, 0x60, 0x11);
    other.dev.ops->write(&other.dev, 0, 0x60, 1);
    assert_int_equal(other.dev.ops->read(&other.dev, 1, 1), 0);
    other.dev.ops->write(&other.dev, 0, RTC_YEAR, 1);
    uint8_t yy = (uint8_t)other.dev.ops->read(&other.dev, 1, 1);
    assert_true((yy >> 4) <= 9 && (yy & 0xf) <= 9);
    rtc_cmos_destroy(&other);
    assert_int_equal(rd(f, 0x60), 0x11);
}

/* ---- save and restore ---- */

static uint8_t tree[STATE_TEST_TREE];

static void save_rtc(struct state_out *out, void *ctx)
{
    state_begin(out, "rtc", RTC_CMOS_STATE_COMPATIBLE);
    assert_int_equal(rtc_cmos_save(ctx, out), 0);
    state_end(out);
}

static int restore_rtc(struct fixture *f, struct errbuf *eb)
{
    struct state_in root = state_test_root(tree, eb), in;
    if (state_open(&root, "rtc", RTC_CMOS_STATE_COMPATIBLE, &in))
        return in.err;
    return rtc_cmos_restore(&f->rtc, &in);
}

/* A device in a new process: its own clocks, at realtime and monotonic. */
static struct fixture *fixture_new(int64_t realtime, int64_t monotonic)
{
    void *p = NULL;
    assert_int_equal(setup(&p), 0);
    struct fixture *f = p;
    f->realtime = realtime;
    f->monotonic = monotonic;
    return f;
}

static void fixture_free(struct fixture *f)
{
    void *p = f;
    assert_int_equal(teardown(&p), 0);
}

/* Reads register reg on both devices: the same value and the same line. */
static void same_rd(struct fixture *a, struct fixture *b, uint8_t reg)
{
    assert_int_equal(rd(a, reg), rd(b, reg));
    assert_int_equal(a->irq.level, b->irq.level);
}

/* The time and date registers, read on both. */
static void same_time(struct fixture *a, struct fixture *b)
{
    static const uint8_t regs[] = {RTC_SECONDS,      RTC_MINUTES, RTC_HOURS, RTC_DAY_OF_WEEK,
                                   RTC_DAY_OF_MONTH, RTC_MONTH,   RTC_YEAR,  RTC_CENTURY};
    for (unsigned i = 0; i < ARRAY_SIZE(regs); i++)
        same_rd(a, b, regs[i]);
}

/* Sets 2031-03-14 15:09:26, a Saturday by the guest's say, as Linux does (SET, divider reset). */
static void set_guest_time(struct fixture *f)
{
    wr(f, RTC_REG_B, BCD | RTC_B_SET);
    wr(f, RTC_REG_A, 0x70);
    wr(f, RTC_SECONDS, 0x26);
    wr(f, RTC_MINUTES, 0x09);
    wr(f, RTC_HOURS, 0x15);
    wr(f, RTC_DAY_OF_WEEK, 7);
    wr(f, RTC_DAY_OF_MONTH, 0x14);
    wr(f, RTC_MONTH, 0x03);
    wr(f, RTC_YEAR, 0x31);
    wr(f, RTC_CENTURY, 0x20);
    wr(f, RTC_REG_B, BCD);
}

/*
 * A guest clock set apart from the host's, an alarm, 2 Hz periodic flags, the
 * update interrupt delivered and not yet acknowledged (the line held), CMOS
 * RAM, an index with NMIs masked. Restored in a process whose monotonic clock
 * is elsewhere, it reads the same and the next interrupts come at the same
 * guest times.
 */
static void save_restore_round_trip(void **state)
{
    struct fixture *f = *state;

    set_guest_time(f);
    wr(f, RTC_REG_A, 0x20 | 15);
    advance(f, 300 * MS);
    wr(f, 0x50, 0x77);
    wr(f, RTC_HOURS_ALARM, RTC_ALARM_DONTCARE);
    wr(f, RTC_MINUTES_ALARM, RTC_ALARM_DONTCARE);
    wr(f, RTC_SECONDS_ALARM, 0x28);
    rd(f, RTC_REG_C);
    wr(f, RTC_REG_B, BCD | RTC_B_UIE | RTC_B_AIE);
    fire(f);
    assert_true(f->irq.level);
    outb(f, RTC_CMOS_INDEX_PORT, RTC_INDEX_NMI_MASK | 0x50);

    assert_int_equal(state_test_write(tree, sizeof(tree), save_rtc, &f->rtc), 0);
    struct fixture *n = fixture_new(f->realtime, 77 * NS);
    struct errbuf eb = {0};
    assert_int_equal(restore_rtc(n, &eb), 0);
    assert_true(n->irq.level);
    assert_int_equal(n->irq.raises, 1);
    assert_true(rtc_cmos_nmi_masked(&n->rtc));
    assert_int_equal(inb(n, RTC_CMOS_DATA_PORT), inb(f, RTC_CMOS_DATA_PORT)); /* index 0x50 */
    assert_int_equal(inb(n, RTC_CMOS_DATA_PORT), 0x77);
    assert_disarmed(n); /* the line is held: no timer until C is read */

    same_time(f, n);
    static const uint8_t regs[] = {RTC_REG_A,         RTC_REG_B,         RTC_REG_D,
                                   RTC_SECONDS_ALARM, RTC_MINUTES_ALARM, RTC_HOURS_ALARM,
                                   CMOS_EQUIPMENT,    CMOS_CHECKSUM_LO};
    for (unsigned i = 0; i < ARRAY_SIZE(regs); i++)
        same_rd(f, n, regs[i]);
    /* The next accesses: C acknowledges, then the same events at the same guest times. */
    same_rd(f, n, RTC_REG_C);
    assert_false(n->irq.level);
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(timer_in(n), timer_in(f));
        fire(f);
        fire(n);
        assert_int_equal(n->irq.level, f->irq.level);
        same_time(f, n);
        same_rd(f, n, RTC_REG_C);
    }
    fixture_free(n);

    /* Saved with the line low and the timer armed: restored, it is armed for the same event. */
    assert_false(f->irq.level);
    assert_int_equal(state_test_write(tree, sizeof(tree), save_rtc, &f->rtc), 0);
    n = fixture_new(f->realtime, 5 * NS);
    assert_int_equal(restore_rtc(n, &eb), 0);
    assert_false(n->irq.level);
    assert_true(timerfd_armed(n));
    assert_int_equal(timer_in(n), timer_in(f));
    fire(n);
    assert_true(n->irq.level);
    fixture_free(n);
}

/* A divider held in reset keeps the restored time; started again, both run alike. */
static void restore_stopped_divider(void **state)
{
    struct fixture *f = *state;

    wr(f, RTC_REG_A, 0x70);
    wr(f, RTC_REG_B, BCD | RTC_B_SET);
    wr(f, RTC_MINUTES, 0x42);
    wr(f, RTC_REG_B, BCD);
    assert_int_equal(state_test_write(tree, sizeof(tree), save_rtc, &f->rtc), 0);
    struct fixture *n = fixture_new(f->realtime + 100 * NS, 5 * NS);
    struct errbuf eb = {0};
    assert_int_equal(restore_rtc(n, &eb), 0);
    assert_time(n, 0x20, 0x26, 0x11, 0x25, 0x23, 0x42, 0x58);
    same_time(f, n);
    wr(f, RTC_REG_A, 0x26);
    wr(n, RTC_REG_A, 0x26);
    advance(f, 500 * MS);
    advance(n, 500 * MS);
    assert_time(n, 0x20, 0x26, 0x11, 0x25, 0x23, 0x42, 0x59);
    same_time(f, n);
    fixture_free(n);
}

/*
 * The snapshot was away for a minute: the guest's clock has caught up with the
 * host's, and the alarm that fell in the gap is flagged with IRQ 8 raised at
 * once, as on the original device whose timer fired in that minute.
 */
static void restore_catches_up_with_host_time(void **state)
{
    struct fixture *f = *state;

    wr(f, RTC_HOURS_ALARM, 0x00);
    wr(f, RTC_MINUTES_ALARM, 0x00);
    wr(f, RTC_SECONDS_ALARM, 0x03); /* 5 s from now */
    rd(f, RTC_REG_C);
    wr(f, RTC_REG_B, BCD | RTC_B_AIE);
    assert_int_equal(timer_in(f), 5 * NS);
    assert_int_equal(state_test_write(tree, sizeof(tree), save_rtc, &f->rtc), 0);

    struct fixture *n = fixture_new(f->realtime + 60 * NS, 3 * NS);
    struct errbuf eb = {0};
    assert_int_equal(restore_rtc(n, &eb), 0);
    assert_true(n->irq.level);
    assert_time(n, 0x20, 0x26, 0x11, 0x26, 0x00, 0x00, 0x58);
    advance(f, 60 * NS);
    rtc_cmos_on_timer(&f->rtc);
    assert_true(f->irq.level);
    same_time(f, n);
    assert_int_equal(rd(n, RTC_REG_C) & ~RTC_C_PF, RTC_C_IRQF | RTC_C_AF | RTC_C_UF);
    assert_int_equal(rd(f, RTC_REG_C) & ~RTC_C_PF, RTC_C_IRQF | RTC_C_AF | RTC_C_UF);
    assert_int_equal(timer_in(n), 24 * 3600 * NS - 55 * NS); /* tomorrow's 00:00:03 */
    fixture_free(n);
}

/* Restores the saved tree edited by edit(), expecting a refusal that names want. */
static void expect_refused(struct fixture *f, void (*edit)(void), const char *want)
{
    assert_int_equal(state_test_write(tree, sizeof(tree), save_rtc, &f->rtc), 0);
    edit();
    struct fixture *n = fixture_new(f->realtime, 5 * NS);
    struct errbuf eb = {0};
    assert_int_equal(restore_rtc(n, &eb), -EINVAL);
    if (!strstr(eb.msg, want))
        fail_msg("refusal '%s' does not name %s", eb.msg, want);
    /* Still the device rtc_cmos_init() made, and it works. */
    assert_false(n->irq.level);
    assert_false(rtc_cmos_nmi_masked(&n->rtc));
    assert_int_equal(rd(n, RTC_REG_A), RTC_A_DEFAULT);
    assert_int_equal(rd(n, RTC_REG_B), RTC_B_DEFAULT);
    assert_time(n, 0x20, 0x26, 0x11, 0x25, 0x23, 0x59, 0x58);
    wr(n, RTC_REG_B, BCD | RTC_B_UIE);
    fire(n);
    assert_true(n->irq.level);
    fixture_free(n);
}

static uint8_t *cmos_prop(void)
{
    int len = 0;
    uint8_t *cmos = state_test_prop(tree, "/rtc", "cmos", &len);
    assert_non_null(cmos);
    assert_int_equal(len, RTC_CMOS_SIZE);
    return cmos;
}

static void set_index_0x80(void)
{
    assert_int_equal(state_test_set_u32(tree, "/rtc", "index", 0x80), 0);
}
static void set_flags_irqf(void)
{
    assert_int_equal(state_test_set_u32(tree, "/rtc", "flags", RTC_C_IRQF), 0);
}
static void set_weekday_7(void)
{
    assert_int_equal(state_test_set_u32(tree, "/rtc", "weekday-delta", 7), 0);
}
static void set_nsec_1e9(void)
{
    assert_int_equal(state_test_set_u32(tree, "/rtc", "time-nsec", NS), 0);
}
static void set_offset_huge(void)
{
    assert_int_equal(state_test_set_u64(tree, "/rtc", "offset-sec", 1ULL << 62), 0);
}
static void set_synced_negative(void)
{
    assert_int_equal(state_test_set_u64(tree, "/rtc", "synced-sec", (uint64_t)INT64_MIN), 0);
}
static void set_uip(void)
{
    cmos_prop()[RTC_REG_A] |= RTC_A_UIP;
}
static void set_reg_c(void)
{
    cmos_prop()[RTC_REG_C] = RTC_C_IRQF;
}
static void set_nmi_2(void)
{
    assert_int_equal(state_test_set_u32(tree, "/rtc", "nmi-masked", 2), 0);
}

static void restore_refuses_hostile(void **state)
{
    struct fixture *f = *state;
    wr(f, RTC_REG_B, BCD | RTC_B_UIE);

    expect_refused(f, set_index_0x80, "'index' is 0x80");
    expect_refused(f, set_flags_irqf, "'flags' is 0x80");
    expect_refused(f, set_weekday_7, "'weekday-delta' is 7");
    expect_refused(f, set_nsec_1e9, "'time-nsec' is 1000000000");
    expect_refused(f, set_offset_huge, "'offset-sec'");
    expect_refused(f, set_synced_negative, "'synced-sec'");
    expect_refused(f, set_uip, "'cmos': register A 0xa6 has UIP");
    expect_refused(f, set_reg_c, "'cmos': registers C and D");
    expect_refused(f, set_nmi_2, "'nmi-masked'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(reads_host_time_bcd, setup, teardown),
        cmocka_unit_test_setup_teardown(reads_binary_and_12_hour, setup, teardown),
        cmocka_unit_test_setup_teardown(rolls_over_year_century_and_leap_days, setup, teardown),
        cmocka_unit_test_setup_teardown(set_time_like_linux, setup, teardown),
        cmocka_unit_test_setup_teardown(set_time_keeps_phase_and_weekday, setup, teardown),
        cmocka_unit_test_setup_teardown(write_without_set_takes_effect, setup, teardown),
        cmocka_unit_test_setup_teardown(invalid_values_are_clamped, setup, teardown),
        cmocka_unit_test_setup_teardown(uip_window_before_each_second, setup, teardown),
        cmocka_unit_test_setup_teardown(register_c_clear_on_read_and_irq, setup, teardown),
        cmocka_unit_test_setup_teardown(flags_without_interrupts_need_no_timer, setup, teardown),
        cmocka_unit_test_setup_teardown(periodic_interrupt_at_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(high_periodic_rate_is_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(alarm_with_dont_care_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(update_ended_interrupt_each_second, setup, teardown),
        cmocka_unit_test_setup_teardown(nmi_mask_bit, setup, teardown),
        cmocka_unit_test_setup_teardown(memory_size_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(index_masking_and_cmos_ram, setup, teardown),
        cmocka_unit_test_setup_teardown(word_access_is_two_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(reset_clears_enables_and_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(host_clock_step_back, setup, teardown),
        cmocka_unit_test_setup_teardown(two_devices_are_independent, setup, teardown),
        cmocka_unit_test_setup_teardown(save_restore_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(restore_stopped_divider, setup, teardown),
        cmocka_unit_test_setup_teardown(restore_catches_up_with_host_time, setup, teardown),
        cmocka_unit_test_setup_teardown(restore_refuses_hostile, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
