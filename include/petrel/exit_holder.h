/*
 * The exit's holder: a process that keeps some of petrel's kernel objects, and its
 * memory, alive past petrel's own exit, so that the kernel's teardown of them (for a VM:
 * unmapping guest RAM, KVM's destruction of the VM, which waits for an RCU barrier and
 * for the VM's worker thread to stop) happens after petrel's parent has seen petrel
 * exit, not before (docs/architecture.md, "Start-up and teardown").
 *
 * The holder shares petrel's memory (CLONE_VM) and gets a copy of its fd table, of
 * which it closes every fd but the kept ones before exit_holder_start() returns: petrel's
 * stdio, sockets and files close at petrel's exit as before. The exit of the thread that
 * started it kills it (PR_SET_PDEATHSIG, SIGKILL); its own exit then drops the last
 * references: the kept fds, and the memory.
 */
#ifndef PETREL_EXIT_HOLDER_H
#define PETREL_EXIT_HOLDER_H

/*
 * Starts the holder with the nr fds in keep (any order). Call it from the thread
 * whose exit ends the process (the holder lives until that thread ends), when nothing
 * is left to do but freeing and exiting. Returns 0 once the holder has closed every
 * other fd; -errno if there is none (the caller's exit tears down as it always did).
 */
int exit_holder_start(const int *keep, unsigned nr);

#endif
