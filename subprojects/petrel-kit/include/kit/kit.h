/*
 * A kit program's life: the runtime starts it (kit_start, from the 64-bit
 * entry in lib/head64.S), calls its kit_main() and ends the VM with the value
 * kit_main returns.
 */
#ifndef KIT_KIT_H
#define KIT_KIT_H

/* The debug-exit port (QEMU's isa-debug-exit, petrel's debug-exit). */
#define KIT_DEBUG_EXIT_PORT 0xf4

/* Each program defines this; its return value is the exit status (0-255). */
int kit_main(void);

/* The runtime's C entry, with the zero page the loader passed. */
void kit_start(const void *boot_params) __attribute__((noreturn));

/*
 * Ends the VM: writes status to the debug-exit port. petrel then exits with
 * status; QEMU with (status << 1) | 1. Without the device, halts forever.
 */
void kit_exit(int status) __attribute__((noreturn));

/* Stops this CPU for good: interrupts off, halt. */
void kit_halt(void) __attribute__((noreturn));

#endif
