/* memlimit.h - how much memory this process may use: physical RAM, or
 * less when a control group limits it (cgroup v1 memory.limit_in_bytes,
 * v2 memory.max, the smallest along the group's path up to the root).
 * The model loader sizes what it keeps resident by it: a container given
 * 8 GiB on a 64 GiB host must not pack 48 GiB of anonymous panels. */
#ifndef AL_UTIL_MEMLIMIT_H
#define AL_UTIL_MEMLIMIT_H

#include <stdint.h>

/* min(physical RAM, the cgroup limits of this process) in bytes; physical
 * RAM when no group limits it or the files cannot be read. */
uint64_t al_mem_limit_bytes(void);

/* The smallest memory limit of a process whose /proc/self/cgroup reads
 * proc_cgroup, with the v1 memory hierarchy mounted at v1_root and the v2
 * unified one at v2_root (either may be missing): UINT64_MAX when none.
 * Exposed for tests, which build a fake tree. */
uint64_t al_mem_cgroup_limit(const char *proc_cgroup, const char *v1_root, const char *v2_root);

#endif
