/*
 * The PC's CMOS real-time clock (Motorola MC146818A) and its 128 bytes of
 * CMOS RAM, at ports 0x70 (index; bit 7 masks NMI) and 0x71 (data), IRQ 8.
 *
 * Time. The guest's clock is the host's CLOCK_REALTIME (UTC) plus an offset,
 * kept as seconds and nanoseconds so that any year 0-9999 the guest can write
 * fits. Registers 0-9 and the century byte (0x32, the FADT's CENTURY) are
 * computed from it on every read, in BCD or binary and 12- or 24-hour mode as
 * register B says, so changing the mode converts them. While B.SET is 1 they
 * hold what was there plus what the guest writes (frozen); clearing SET turns
 * them back into a time, keeping the sub-second phase of the divider as the
 * chip does (SET going to 1 also clears UIE, as on the chip). A write with SET
 * clear takes effect at once, the same way.
 * Out-of-range values are clamped (month 13 is December, 31 February is the
 * last day of February), so reads outside SET are always a valid date.
 * The day of week is a separate counter on the chip: petrel keeps it as an
 * offset from the day the date implies, so it reads back what was written and
 * advances at midnight. Daylight saving (B.DSE) is not applied.
 *
 * Register A's divider (bits 4-6): 0-2 run the clock, 3-7 stop it (6 and 7
 * are the divider reset Linux's mc146818_set_time() holds while it writes);
 * when it runs again, the first update comes half a second later
 * (MC146818A datasheet, register A). UIP (A bit 7) is 1 during the last
 * 244 us before each second boundary of guest time while the clock runs and
 * SET is clear, so a reader polling it waits at most that long.
 *
 * Interrupts. Register C's PF, AF and UF are set by the events whether or not
 * they are enabled (PF only while a rate is selected); IRQF = PF.PIE + AF.AIE
 * + UF.UIE, and IRQ 8 follows IRQF: raised when an enabled event happens and
 * held until the guest reads C (which clears the flags), exactly the chip's
 * IRQ# pin. ISA IRQ 8 is edge-triggered, so each event the guest acknowledges
 * is a fresh edge; Linux's rtc-cmos reads C in its handler (cmos_interrupt())
 * and when it enables interrupts, so it sees every one.
 * Periodic rates (A bits 0-3): 32768 >> (rate - 1) Hz, with rates 1 and 2
 * being 256 and 128 Hz (32.768 kHz time base), 0 = off.
 *
 * The timer. Flags are computed from guest time when C is read, so no timer
 * is needed to keep them; the timerfd only delivers IRQ 8 on time. It is
 * armed only while an enabled event can raise the line (never for a guest
 * that enables no RTC interrupt, and not while the line is held waiting for
 * the guest to read C), and it fires at most RTC_CMOS_TIMER_MAX_HZ times a
 * second: a guest asking for 8192 Hz periodic interrupts gets at most 1024 a
 * second, each with PF set (one or more periods elapsed, as the flag means).
 * timerfd_settime() is thread-safe, so whichever thread changes the state
 * (a vCPU in bus_dispatch, or the loop in rtc_cmos_on_timer()) re-arms it.
 *
 * CMOS RAM. 0x0e-0x7f except 0x32 read back what was written. petrel fills
 * the equipment byte (0x14), the memory sizes (rtc_cmos_set_memory()) and the
 * standard checksum over 0x10-0x2d at 0x2e/0x2f; the shutdown status (0x0f)
 * starts at 0.
 */
#ifndef PETREL_RTC_CMOS_H
#define PETREL_RTC_CMOS_H

#include <stdbool.h>
#include <stdint.h>

#include "petrel/bus.h"
#include "petrel/hwdev.h"
#include "petrel/irq.h"
#include "petrel/platform.h"
#include "petrel/state.h"
#include "petrel/util.h"

#define RTC_CMOS_INDEX_PORT 0x70
#define RTC_CMOS_DATA_PORT  0x71
#define RTC_CMOS_NR_PORTS   2
#define RTC_CMOS_IRQ        PLAT_RTC_IRQ
#define RTC_CMOS_SIZE       128 /* the index has 7 bits */

/* The most timer wakeups per second (see above). */
#define RTC_CMOS_TIMER_MAX_HZ 1024

/* Register indexes (MC146818A; Linux's include/linux/mc146818rtc.h). */
#define RTC_SECONDS       0x00
#define RTC_SECONDS_ALARM 0x01
#define RTC_MINUTES       0x02
#define RTC_MINUTES_ALARM 0x03
#define RTC_HOURS         0x04
#define RTC_HOURS_ALARM   0x05
#define RTC_DAY_OF_WEEK   0x06 /* 1 = Sunday */
#define RTC_DAY_OF_MONTH  0x07
#define RTC_MONTH         0x08
#define RTC_YEAR          0x09
#define RTC_REG_A         0x0a
#define RTC_REG_B         0x0b
#define RTC_REG_C         0x0c
#define RTC_REG_D         0x0d
#define RTC_CENTURY       0x32 /* IBM PC/AT century byte */

/* CMOS RAM bytes of the PC/AT (and SeaBIOS/QEMU's above-4 GiB size). */
#define CMOS_SHUTDOWN_STATUS 0x0f
#define CMOS_EQUIPMENT       0x14
#define CMOS_BASE_MEM_LO     0x15 /* KiB below 1 MiB (at most 640) */
#define CMOS_BASE_MEM_HI     0x16
#define CMOS_EXT_MEM_LO      0x17 /* KiB above 1 MiB, at most 0xffff */
#define CMOS_EXT_MEM_HI      0x18
#define CMOS_CHECKSUM_HI     0x2e /* sum of 0x10-0x2d, big-endian */
#define CMOS_CHECKSUM_LO     0x2f
#define CMOS_EXT_MEM2_LO     0x30 /* a copy of 0x17/0x18 */
#define CMOS_EXT_MEM2_HI     0x31
#define CMOS_MEM_16M_LO      0x34 /* 64 KiB units from 16 MiB to the hole, at most 0xffff */
#define CMOS_MEM_16M_HI      0x35
#define CMOS_MEM_4G_LO       0x5b /* 64 KiB units above 4 GiB, 3 bytes */
#define CMOS_MEM_4G_MID      0x5c
#define CMOS_MEM_4G_HI       0x5d

#define RTC_INDEX_NMI_MASK 0x80 /* port 0x70 bit 7 */
#define RTC_INDEX_MASK     0x7f

#define RTC_A_UIP       0x80
#define RTC_A_DV_MASK   0x70 /* divider: 0x20 = 32.768 kHz; 0x60/0x70 = reset */
#define RTC_A_DV_SHIFT  4
#define RTC_A_RATE_MASK 0x0f
#define RTC_A_DEFAULT   0x26 /* 32.768 kHz, 1024 Hz periodic rate (as a BIOS leaves it) */

#define RTC_B_SET     0x80
#define RTC_B_PIE     0x40
#define RTC_B_AIE     0x20
#define RTC_B_UIE     0x10
#define RTC_B_SQWE    0x08
#define RTC_B_DM      0x04 /* binary, not BCD */
#define RTC_B_24H     0x02
#define RTC_B_DSE     0x01
#define RTC_B_DEFAULT RTC_B_24H /* BCD, 24-hour, as Linux's rtc-cmos requires */

#define RTC_C_IRQF   0x80
#define RTC_C_PF     0x40
#define RTC_C_AF     0x20
#define RTC_C_UF     0x10
#define RTC_C_EVENTS (RTC_C_PF | RTC_C_AF | RTC_C_UF) /* the same bits as B's enables */

#define RTC_D_VRT 0x80 /* valid RAM and time */

#define RTC_HOUR_PM        0x80 /* 12-hour mode */
#define RTC_ALARM_DONTCARE 0xc0 /* an alarm byte 0xc0-0xff matches every value */

/*
 * The host clocks the device reads, in ns: CLOCK_REALTIME (the guest's time
 * follows it) and CLOCK_MONOTONIC (the timerfd's clock). Tests pass fakes.
 */
struct rtc_cmos_clock {
    int64_t (*realtime_ns)(void *ctx);
    int64_t (*monotonic_ns)(void *ctx);
    void *ctx;
};

/* A guest time: seconds since 1970-01-01 00:00:00 UTC and 0 <= nsec < 1e9. */
struct rtc_cmos_ts {
    int64_t sec;
    int64_t nsec;
};

struct rtc_cmos {
    struct device dev; /* dev.lock guards everything below but the immutable fields */

    /* Immutable after rtc_cmos_init(). */
    struct irq_line *irq;
    struct rtc_cmos_clock clock;
    int timer_fd; /* timerfd on CLOCK_MONOTONIC; settime under dev.lock */

    uint8_t index; /* the register port 0x71 reaches */
    bool nmi_masked;
    /* CMOS RAM and registers A and B. The time registers' slots hold the
     * frozen values only while B.SET is 1; C and D's slots are unused. */
    uint8_t cmos[RTC_CMOS_SIZE];
    uint8_t flags; /* register C's PF, AF, UF */
    bool irq_level;

    /* Guest time: host realtime + offset while running; frozen while halted. */
    struct rtc_cmos_ts offset;
    bool halted; /* the divider is stopped (A bits 4-6 >= 3) */
    struct rtc_cmos_ts frozen;
    unsigned wday_delta; /* day of week register = date's weekday + this (mod 7) */
    /* Register C's flags hold every event up to this guest time. */
    struct rtc_cmos_ts synced;

    /* The timer: armed for the event at guest time armed_at, which is
     * monotonic time deadline_ns. */
    bool armed;
    struct rtc_cmos_ts armed_at;
    int64_t deadline_ns;
    int64_t last_fire_ns; /* monotonic time rtc_cmos_on_timer() last raised IRQ 8 */
    uint64_t timer_calls; /* rtc_cmos_on_timer() calls */
};

/*
 * Sets the device up with the clock at the host's time; clock NULL means the
 * real clocks (a non-NULL one is copied). irq is IRQ 8. Returns 0 or -errno
 * (timerfd_create); after a failure, do not call rtc_cmos_destroy().
 */
int rtc_cmos_init(struct rtc_cmos *rtc, struct irq_line *irq,
                  const struct rtc_cmos_clock *clock) MUST_CHECK;
void rtc_cmos_destroy(struct rtc_cmos *rtc);

/*
 * Records the RAM layout in the CMOS memory-size bytes: below_4g bytes from
 * address 0 (up to the PCI hole) and above_4g bytes from 4 GiB.
 */
void rtc_cmos_set_memory(struct rtc_cmos *rtc, uint64_t below_4g, uint64_t above_4g);

/* The timerfd the event loop watches for EV_READ. */
int rtc_cmos_timer_fd(struct rtc_cmos *rtc);

/*
 * For the event loop when the timerfd is readable (a spurious call is
 * harmless): reads the fd, sets register C's flags, raises IRQ 8, re-arms.
 */
void rtc_cmos_on_timer(struct rtc_cmos *rtc);

/* Whether the guest masked NMIs (port 0x70 bit 7 of the last index write). */
bool rtc_cmos_nmi_masked(struct rtc_cmos *rtc);

#define RTC_CMOS_STATE_COMPATIBLE "petrel,rtc-cmos-v1"
/* Saved guest times are refused beyond this many seconds from 1970 (~35,000 years). */
#define RTC_CMOS_STATE_MAX_SEC (1LL << 40)

/*
 * Writes what the guest can read into a node the caller began
 * (RTC_CMOS_STATE_COMPATIBLE), with the VM paused: the index and NMI mask,
 * the 128 bytes of registers and RAM, register C's flags and the guest time
 * they are up to date with, the weekday offset, and the guest's time twice:
 * "time" (the guest's time at the save; while the divider is stopped, the
 * time it stopped at) and "offset" (guest time minus the host's
 * CLOCK_REALTIME, while the clock runs). Not saved: the timer (armed again from the
 * restored registers), the rate cap's last delivery and the fd.
 * Returns out->err.
 */
int rtc_cmos_save(const struct rtc_cmos *rtc, struct state_out *out) MUST_CHECK;

/*
 * Loads what rtc_cmos_save() wrote into a device set up by rtc_cmos_init(),
 * refusing (in->err, with the property named) any value it cannot hold, in
 * which case rtc is unchanged.
 *
 * Guest time: a running clock keeps its saved offset from the host's
 * CLOCK_REALTIME, so the guest's wall clock catches up with the host by the
 * time the snapshot was away, as KVM_CLOCK_REALTIME does for kvmclock (the
 * snapshot's default). Events that fell in that gap (updates, an alarm, a
 * periodic tick) set their flags and, if enabled, raise IRQ 8 at once, as
 * the timer would have; the timer is armed for the next one. A stopped
 * divider holds the saved time.
 */
int rtc_cmos_restore(struct rtc_cmos *rtc, struct state_in *in) MUST_CHECK;

/* The RTC (0x70-0x71, IRQ 8) in the machine table (machine.c). */
extern const struct hwdev_ops rtc_cmos_isa;

#endif
