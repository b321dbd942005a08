// Kernel-visible thread names, so that `top -H`, `perf` and `gdb` tell the store's threads apart.

import Foundation

/// Names the calling thread, also for the kernel (at most 15 bytes reach it on Linux).
/// swift-corelibs-foundation passes `Thread.name` to the kernel only when the thread names itself,
/// so this runs on the thread being named.
func nameKernelThread(_ name: String) {
  Thread.current.name = name
}
