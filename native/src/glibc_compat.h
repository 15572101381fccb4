// Keeps the shipped addon loadable on glibc 2.28 (EL8, openEuler 20.03) when it is built
// against a newer glibc. binding.gyp force-includes this header (-include) into every source
// file; the sources themselves do not know about it, and the cmake-js builds (sanitizers,
// fuzzing) do not use it.
//
// - dlopen/dlsym/dlerror/dlclose and pthread_once moved into libc in glibc 2.34 under a new
//   default version; glibc keeps the original version (GLIBC_2.2.5 on x86-64, GLIBC_2.17 on
//   arm64) as a compatibility symbol, which an older glibc provides from libdl.so.2 and
//   libpthread.so.0 (binding.gyp links both by soname so they are always loaded).
// - fstat got a real libc symbol only in glibc 2.33 (before, a libc_nonshared.a wrapper around
//   __fxstat64): it is made a direct system call, whose struct stat is glibc's on both
//   architectures.
// - libstdc++'s headers read __libc_single_threaded (glibc 2.32) when the glibc headers have
//   it: a constant "not known to be single-threaded" keeps the atomic reference counting.
// scripts/make/check-glibc.sh fails the build when a symbol newer than 2.28 is still needed.
#ifndef KMODLOAD_GLIBC_COMPAT_H
#define KMODLOAD_GLIBC_COMPAT_H

#if defined(__linux__)
#include <features.h>
#endif

#if defined(__linux__) && defined(__GLIBC__)

#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define KMODLOAD_GLIBC_BASE "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define KMODLOAD_GLIBC_BASE "GLIBC_2.17"
#endif

#if defined(KMODLOAD_GLIBC_BASE) && __GLIBC_PREREQ(2, 34)
__asm__(".symver dlopen,dlopen@" KMODLOAD_GLIBC_BASE);
__asm__(".symver dlsym,dlsym@" KMODLOAD_GLIBC_BASE);
__asm__(".symver dlerror,dlerror@" KMODLOAD_GLIBC_BASE);
__asm__(".symver dlclose,dlclose@" KMODLOAD_GLIBC_BASE);
__asm__(".symver pthread_once,pthread_once@" KMODLOAD_GLIBC_BASE);
#endif

// Only where the prebuilds are made (x86-64, arm64): there glibc's struct stat is the kernel's.
// On 32-bit targets with _FILE_OFFSET_BITS=64 it is not, and those build from source anyway.
#if defined(KMODLOAD_GLIBC_BASE) && __GLIBC_PREREQ(2, 33)
namespace kmodload_glibc {
inline int fstat(int fd, struct stat* st) { return static_cast<int>(::syscall(SYS_fstat, fd, st)); }
}  // namespace kmodload_glibc
#define fstat kmodload_glibc::fstat
#endif

#if defined(KMODLOAD_GLIBC_BASE) && __GLIBC_PREREQ(2, 32) && defined(__cplusplus)
#include <sys/single_threaded.h>
namespace kmodload_glibc {
inline constexpr char never_single_threaded = 0;
}  // namespace kmodload_glibc
#define __libc_single_threaded kmodload_glibc::never_single_threaded
#endif

#endif  // __linux__ && __GLIBC__
#endif  // KMODLOAD_GLIBC_COMPAT_H
