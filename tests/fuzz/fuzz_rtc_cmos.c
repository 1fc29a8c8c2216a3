/*
 * Fuzz target: the CMOS RTC as a hostile guest and a moving host clock drive it.
 *
 * Input format (tests/fuzz/gen_corpus.py writes seeds in it):
 *   byte 0        the host's start time (bits 0-2, from a table) and the RAM size (bits 3-7)
 *   byte 1        the start time's fraction of a second, in 1/256 s
 *   then ops, each starting with one byte OP:
 *     OP >> 5 == 0  write port 0x70 (index, NMI bit) with the next byte
 *     OP >> 5 == 1  write port 0x71 with the next byte
 *     OP >> 5 == 2  read port 0x71
 *     OP >> 5 == 3  select register OP & 31 (NMI clear) and read it
 *     OP >> 5 == 4  both host clocks advance by ((OP & 31) + 1) << (next byte % 45) ns; the
 *                   event loop runs the timer callback whenever the deadline passes
 *     OP >> 5 == 5  a spurious timer callback
 *     OP >> 5 == 6  a 16-bit access at 0x70: OP & 1 ? write the next two bytes : read
 *     OP >> 5 == 7  OP & 7: 0 device reset, 1 the host's realtime clock steps back by the
 *                   next byte in minutes, 2 forward by the next byte in hours, 3 new RAM
 *                   size from the next byte, others read register C
 *
 * Accesses go through a bus, as a vCPU's port exits do. Checked after every op:
 * the time registers hold a valid date and time in the current mode whenever
 * SET is clear (BCD digits, ranges, days in the month, the 12-hour format); the
 * clock advances by the time that passed (and steps with the host); with no
 * time register ever written, the weekday is the date's; UIP clears within
 * 244 us; IRQ 8 is high exactly when an enabled flag is set and drops when C is
 * read; C's flags are plausible (PF only with a rate, UF/AF only with updates)
 * and present when they must be (an update or a tick surely passed); the timer
 * is armed only when an enabled interrupt can still raise the line; frozen time
 * registers, registers A and B and CMOS RAM read back what was written.
 */
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>

#include "fuzz.h"
#include "petrel/bus.h"
#include "petrel/rtc_cmos.h"
#include "fake_irq.h"

#define NS 1000000000LL

/* What the guest should read back. */
struct model {
    uint8_t ram[RTC_CMOS_SIZE];
    bool ram_known[RTC_CMOS_SIZE];
    uint8_t frozen[RTC_CMOS_SIZE]; /* time registers written while SET is 1 */
    bool frozen_known[RTC_CMOS_SIZE];
    uint8_t a, b;
    bool nmi;
    bool time_written; /* the weekday may differ from the date's from now on */
    uint8_t set_mode;  /* B's DM and 24/12 bits when SET went to 1 */
    /* Since register C was last read: */
    bool rate_seen;    /* a periodic rate ran at some point */
    bool updates_seen; /* the clock ran with SET clear at some point */
    int64_t clean_ns;  /* time the clock ran undisturbed with SET clear */
    /* The host's clock stepped back: the device notices at its next look at the clock,
     * which starts the count again from there. */
    bool stepped_back;
};

struct rig {
    struct bus bus;
    struct fake_irq irq;
    struct rtc_cmos rtc;
    int64_t realtime, monotonic;
    struct model m;
};

static int64_t rig_realtime(void *ctx)
{
    return ((struct rig *)ctx)->realtime;
}

static int64_t rig_monotonic(void *ctx)
{
    return ((struct rig *)ctx)->monotonic;
}

static uint8_t inb(struct rig *r, uint16_t port)
{
    uint8_t v = 0;
    FUZZ_CHECK(bus_dispatch(&r->bus, port, &v, 1, false) == 0);
    return v;
}

static void outb(struct rig *r, uint16_t port, uint8_t v)
{
    FUZZ_CHECK(bus_dispatch(&r->bus, port, &v, 1, true) == 0);
}

static bool is_time_reg(unsigned reg)
{
    return reg == RTC_SECONDS || reg == RTC_MINUTES || reg == RTC_HOURS || reg == RTC_DAY_OF_WEEK ||
           reg == RTC_DAY_OF_MONTH || reg == RTC_MONTH || reg == RTC_YEAR || reg == RTC_CENTURY;
}

static bool running(struct rig *r)
{
    return !r->rtc.halted && !(r->rtc.cmos[RTC_REG_B] & RTC_B_SET);
}

/* Reads a register without disturbing the guest's index (peeking, not a guest access). */
static uint8_t peek(struct rig *r, uint8_t reg)
{
    uint8_t saved = (uint8_t)(r->rtc.index | (r->rtc.nmi_masked ? RTC_INDEX_NMI_MASK : 0));
    outb(r, RTC_CMOS_INDEX_PORT, reg);
    uint8_t v = inb(r, RTC_CMOS_DATA_PORT);
    outb(r, RTC_CMOS_INDEX_PORT, saved);
    return v;
}

/* A time byte's value, checking that it is valid in the mode. */
static unsigned field(uint8_t b, uint8_t v, unsigned lo, unsigned hi)
{
    unsigned n = v;
    if (!(b & RTC_B_DM)) {
        FUZZ_CHECK((v & 0xf) <= 9 && (v >> 4) <= 9);
        n = (v >> 4) * 10u + (v & 0xf);
    }
    FUZZ_CHECK(n >= lo && n <= hi);
    return n;
}

/* The time registers as seconds since the epoch, each field checked; -1 if the year is
 * 9999 (which wraps to 0000 and would break the arithmetic of the caller). */
static int64_t read_epoch(struct rig *r)
{
    uint8_t b = r->rtc.cmos[RTC_REG_B];
    struct tm tm = {0};

    tm.tm_sec = (int)field(b, peek(r, RTC_SECONDS), 0, 59);
    tm.tm_min = (int)field(b, peek(r, RTC_MINUTES), 0, 59);
    uint8_t h = peek(r, RTC_HOURS);
    if (b & RTC_B_24H) {
        tm.tm_hour = (int)field(b, h, 0, 23);
    } else {
        unsigned h12 = field(b, h & 0x7f, 1, 12);
        tm.tm_hour = (int)(h12 % 12 + (h & RTC_HOUR_PM ? 12 : 0));
    }
    unsigned wday = field(b, peek(r, RTC_DAY_OF_WEEK), 1, 7);
    tm.tm_mday = (int)field(b, peek(r, RTC_DAY_OF_MONTH), 1, 31);
    tm.tm_mon = (int)field(b, peek(r, RTC_MONTH), 1, 12) - 1;
    unsigned year =
        field(b, peek(r, RTC_CENTURY), 0, 99) * 100 + field(b, peek(r, RTC_YEAR), 0, 99);
    tm.tm_year = (int)year - 1900;
    int mday = tm.tm_mday;
    time_t t = timegm(&tm);
    FUZZ_CHECK(tm.tm_mday == mday); /* no 31 April: timegm would have moved it on */
    if (!r->m.time_written)
        FUZZ_CHECK(wday == (unsigned)tm.tm_wday + 1);
    return year == 9999 ? -1 : (int64_t)t;
}

static void check_invariants(struct rig *r)
{
    struct rtc_cmos *rtc = &r->rtc;
    uint8_t b = rtc->cmos[RTC_REG_B];

    FUZZ_CHECK(rtc->index < RTC_CMOS_SIZE);
    FUZZ_CHECK(!(rtc->cmos[RTC_REG_A] & RTC_A_UIP));
    FUZZ_CHECK((rtc->flags & ~RTC_C_EVENTS) == 0);
    FUZZ_CHECK(rtc->irq_level == r->irq.level);
    FUZZ_CHECK(r->irq.repeats == 0); /* the device reports changes only */
    FUZZ_CHECK(rtc->irq_level == ((rtc->flags & b & RTC_C_EVENTS) != 0));
    FUZZ_CHECK(rtc->halted == ((rtc->cmos[RTC_REG_A] & RTC_A_DV_MASK) >= 0x30));
    FUZZ_CHECK(rtc->offset.nsec >= 0 && rtc->offset.nsec < NS);
    FUZZ_CHECK(rtc->wday_delta < 7);
    FUZZ_CHECK(b == r->m.b);
    FUZZ_CHECK((rtc->cmos[RTC_REG_A] & 0x7f) == (r->m.a & 0x7f));
    FUZZ_CHECK(rtc_cmos_nmi_masked(rtc) == r->m.nmi);
    /* The timer runs only while an enabled event can still raise the line. */
    if (rtc->armed) {
        FUZZ_CHECK(b & (RTC_B_PIE | RTC_B_AIE | RTC_B_UIE));
        FUZZ_CHECK(!rtc->irq_level && !rtc->halted);
    } else {
        struct itimerspec its;
        FUZZ_CHECK(timerfd_gettime(rtc_cmos_timer_fd(rtc), &its) == 0);
        FUZZ_CHECK(its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0);
    }
    if (!(b & RTC_B_SET))
        read_epoch(r); /* checks every field, halted or not */

    if ((rtc->cmos[RTC_REG_A] & RTC_A_RATE_MASK) && !rtc->halted)
        r->m.rate_seen = true;
    if (running(r))
        r->m.updates_seen = true;
}

/* The clean-run accounting starts over: the guest or the host changed the clock. */
static void disturb(struct rig *r)
{
    r->m.clean_ns = 0;
}

static void check_c(struct rig *r, uint8_t v)
{
    uint8_t b = r->rtc.cmos[RTC_REG_B];
    unsigned rate = r->rtc.cmos[RTC_REG_A] & RTC_A_RATE_MASK;

    FUZZ_CHECK((v & 0x0f) == 0);
    FUZZ_CHECK(!!(v & RTC_C_IRQF) == ((v & b & RTC_C_EVENTS) != 0));
    FUZZ_CHECK(!r->irq.level);
    if (v & RTC_C_PF)
        FUZZ_CHECK(r->m.rate_seen);
    if (v & (RTC_C_UF | RTC_C_AF))
        FUZZ_CHECK(r->m.updates_seen);
    /* An undisturbed second with SET clear holds an update; a period of the rate, a tick. */
    if (r->m.clean_ns >= NS && !r->m.stepped_back)
        FUZZ_CHECK(v & RTC_C_UF);
    if (rate && r->m.clean_ns >= NS / 2 && !r->m.stepped_back)
        FUZZ_CHECK(v & RTC_C_PF);
    r->m.stepped_back = false;
    r->m.rate_seen = false;
    r->m.updates_seen = false;
    r->m.clean_ns = 0;
}

static void do_index(struct rig *r, uint8_t v)
{
    outb(r, RTC_CMOS_INDEX_PORT, v);
    r->m.nmi = v & RTC_INDEX_NMI_MASK;
}

/* What the guest's write of v to register reg changes in the model. */
static void model_write(struct rig *r, unsigned reg, uint8_t v)
{
    struct model *m = &r->m;
    bool set = m->b & RTC_B_SET;

    if (reg == RTC_REG_A) {
        m->a = v;
        disturb(r);
    } else if (reg == RTC_REG_B) {
        if ((v & RTC_B_SET) && !set) {
            v &= ~RTC_B_UIE;
            memset(m->frozen_known, 0, sizeof(m->frozen_known));
            m->set_mode = m->b & (RTC_B_DM | RTC_B_24H);
        }
        /* The frozen registers read in another mode: another date, the same weekday byte. */
        if (!(v & RTC_B_SET) && set && (v & (RTC_B_DM | RTC_B_24H)) != m->set_mode)
            m->time_written = true;
        m->b = v;
        disturb(r);
    } else if (is_time_reg(reg)) {
        m->time_written = true;
        if (set) {
            m->frozen[reg] = v;
            m->frozen_known[reg] = true;
        }
        disturb(r);
    } else if (reg != RTC_REG_C && reg != RTC_REG_D) {
        m->ram[reg] = v;
        m->ram_known[reg] = true;
    }
}

static void do_write(struct rig *r, uint8_t v)
{
    model_write(r, r->rtc.index, v);
    outb(r, RTC_CMOS_DATA_PORT, v);
}

static void do_read(struct rig *r)
{
    unsigned reg = r->rtc.index;
    uint8_t v = inb(r, RTC_CMOS_DATA_PORT);

    if (reg == RTC_REG_A && (v & RTC_A_UIP)) {
        FUZZ_CHECK(running(r));
        /* The update is at most 244 us away; after it, UIP is clear for most of a second. */
        r->realtime += 244000;
        r->monotonic += 244000;
        FUZZ_CHECK(!(inb(r, RTC_CMOS_DATA_PORT) & RTC_A_UIP));
    } else if (reg == RTC_REG_B) {
        FUZZ_CHECK(v == r->m.b);
    } else if (reg == RTC_REG_C) {
        check_c(r, v);
    } else if (reg == RTC_REG_D) {
        FUZZ_CHECK(v == RTC_D_VRT);
    } else if (is_time_reg(reg) && (r->m.b & RTC_B_SET) && r->m.frozen_known[reg]) {
        FUZZ_CHECK(v == r->m.frozen[reg]);
    } else if (r->m.ram_known[reg]) {
        FUZZ_CHECK(v == r->m.ram[reg]);
    }
}

/* Time passes; the event loop calls back whenever the timer's deadline comes. */
static void do_advance(struct rig *r, int64_t ns)
{
    bool was_running = running(r);
    int64_t before = was_running ? read_epoch(r) : -1;
    int64_t target = r->monotonic + ns;

    for (unsigned i = 0; i < 64 && r->rtc.armed && r->rtc.deadline_ns <= target; i++) {
        /* Late (a UIP check moved the clocks without the loop): the loop calls back now. */
        int64_t step = r->rtc.deadline_ns > r->monotonic ? r->rtc.deadline_ns - r->monotonic : 0;
        r->realtime += step;
        r->monotonic += step;
        rtc_cmos_on_timer(&r->rtc);
        FUZZ_CHECK(!r->rtc.armed || r->rtc.deadline_ns > r->monotonic);
        check_invariants(r);
    }
    r->realtime += target - r->monotonic;
    r->monotonic = target;
    if (was_running) {
        r->m.clean_ns += ns;
        int64_t after = read_epoch(r);
        if (before >= 0 && after >= 0) {
            FUZZ_CHECK(after - before >= ns / NS);
            FUZZ_CHECK(after - before <= ns / NS + 1);
        }
    }
}

/* The host's realtime clock steps (NTP, settimeofday); the guest's clock steps with it. */
static void do_step(struct rig *r, int64_t sec)
{
    bool was_running = running(r);
    int64_t before = was_running ? read_epoch(r) : -1;

    r->realtime += sec * NS;
    disturb(r);
    if (sec < 0)
        r->m.stepped_back = true;
    if (was_running) {
        int64_t after = read_epoch(r);
        if (before >= 0 && after >= 0)
            FUZZ_CHECK(after - before == sec);
    }
}

static void do_memory(struct rig *r, uint8_t v)
{
    uint64_t below = (uint64_t)(v & 0x1f) << (v >> 5 << 2);
    rtc_cmos_set_memory(&r->rtc, below * MiB, (uint64_t)(v >> 3) * GiB);
    /* The size bytes and the checksum change: learn them again. */
    memset(r->m.ram_known, 0, sizeof(r->m.ram_known));
}

static void do_reset(struct rig *r)
{
    r->rtc.dev.ops->reset(&r->rtc.dev);
    r->m.b &= ~(RTC_B_PIE | RTC_B_AIE | RTC_B_UIE | RTC_B_SQWE);
    FUZZ_CHECK(!r->irq.level);
    r->m.rate_seen = r->m.updates_seen = false;
    r->m.clean_ns = 0;
}

/* outw/inw 0x70: the index byte, then the data byte, in one access. */
static void do_word(struct rig *r, bool write, uint8_t lo, uint8_t hi)
{
    uint8_t buf[2] = {lo, hi};

    if (write) {
        r->m.nmi = lo & RTC_INDEX_NMI_MASK;
        model_write(r, lo & RTC_INDEX_MASK, hi);
        FUZZ_CHECK(bus_dispatch(&r->bus, RTC_CMOS_INDEX_PORT, buf, 2, true) == 0);
        FUZZ_CHECK(r->rtc.index == (lo & RTC_INDEX_MASK));
        return;
    }
    unsigned reg = r->rtc.index;
    FUZZ_CHECK(bus_dispatch(&r->bus, RTC_CMOS_INDEX_PORT, buf, 2, false) == 0);
    FUZZ_CHECK(buf[0] == 0xff);
    if (reg == RTC_REG_C)
        check_c(r, buf[1]);
    else if (reg == RTC_REG_D)
        FUZZ_CHECK(buf[1] == RTC_D_VRT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rig r;
    static const struct tm starts[8] = {
        {.tm_year = 126, .tm_mon = 10, .tm_mday = 25, .tm_hour = 23, .tm_min = 59, .tm_sec = 58},
        {.tm_year = 99, .tm_mon = 11, .tm_mday = 31, .tm_hour = 23, .tm_min = 59, .tm_sec = 59},
        {.tm_year = 124, .tm_mon = 1, .tm_mday = 28, .tm_hour = 23, .tm_min = 59, .tm_sec = 59},
        {.tm_year = 199, .tm_mon = 11, .tm_mday = 31, .tm_hour = 23, .tm_min = 59, .tm_sec = 50},
        {.tm_year = 100, .tm_mon = 1, .tm_mday = 29, .tm_hour = 11, .tm_min = 59, .tm_sec = 59},
        {.tm_year = 70, .tm_mon = 0, .tm_mday = 1, .tm_hour = 0, .tm_min = 0, .tm_sec = 0},
        {.tm_year = 138, .tm_mon = 0, .tm_mday = 19, .tm_hour = 3, .tm_min = 14, .tm_sec = 7},
        {.tm_year = 200, .tm_mon = 1, .tm_mday = 28, .tm_hour = 23, .tm_min = 59, .tm_sec = 59},
    };
    size_t pos = 0;

    if (size < 2)
        return 0;
    memset(&r, 0, sizeof(r));
    struct tm start = starts[data[0] & 7];
    r.realtime = (int64_t)timegm(&start) * NS + (int64_t)data[1] * (NS / 256);
    r.monotonic = 12345 * NS;
    pos = 2;
    fake_irq_init(&r.irq);
    struct rtc_cmos_clock clock = {rig_realtime, rig_monotonic, &r};
    FUZZ_CHECK(rtc_cmos_init(&r.rtc, &r.irq.line, &clock) == 0);
    rtc_cmos_set_memory(&r.rtc, (uint64_t)(data[0] >> 3) * 128 * MiB, 0);
    bus_init(&r.bus, "pio");
    FUZZ_CHECK(bus_register(&r.bus, RTC_CMOS_INDEX_PORT, RTC_CMOS_NR_PORTS, &r.rtc.dev) == 0);
    r.m.a = RTC_A_DEFAULT;
    r.m.b = RTC_B_DEFAULT;
    r.m.rate_seen = r.m.updates_seen = true; /* C was never read: flags from before start */
    check_invariants(&r);

    while (pos < size) {
        uint8_t op = data[pos++];
        uint8_t arg = pos < size ? data[pos] : 0;
        switch (op >> 5) {
        case 0:
            do_index(&r, arg);
            pos++;
            break;
        case 1:
            do_write(&r, arg);
            pos++;
            break;
        case 2:
            do_read(&r);
            break;
        case 3:
            do_index(&r, op & 31);
            do_read(&r);
            break;
        case 4:
            do_advance(&r, (int64_t)((op & 31) + 1) << (arg % 45));
            pos++;
            break;
        case 5:
            rtc_cmos_on_timer(&r.rtc);
            break;
        case 6:
            if (op & 1) {
                do_word(&r, true, arg, pos + 1 < size ? data[pos + 1] : 0);
                pos += 2;
            } else {
                do_word(&r, false, 0, 0);
            }
            break;
        case 7:
            switch (op & 7) {
            case 0:
                do_reset(&r);
                break;
            case 1:
                do_step(&r, -60 * (int64_t)arg);
                pos++;
                break;
            case 2:
                do_step(&r, 3600 * (int64_t)arg);
                pos++;
                break;
            case 3:
                do_memory(&r, arg);
                pos++;
                break;
            default:
                do_index(&r, RTC_REG_C);
                do_read(&r);
                break;
            }
            break;
        }
        check_invariants(&r);
    }

    bus_destroy(&r.bus);
    rtc_cmos_destroy(&r.rtc);
    return 0;
}
