// Kernel-visible thread names, so that `top -H`, `perf`, gdb and the crash simulator's fault
// reports tell the store's threads apart.

#if canImport(Glibc)
  import Glibc
#endif

/// Names the calling thread for the kernel by writing `/proc/thread-self/comm`.
///
/// Not `Thread.name`: swift-corelibs-foundation passes it to the kernel only when the thread
/// object already knows its own pthread handle, which races with the thread's start (the crash
/// simulator caught a snapshotter still showing the name it inherited from its creator). And
/// Glibc's `pthread_setname_np` is not imported into Swift. A write to procfs, not through the
/// `FileSystem` seam: it names a thread, it stores nothing. Best effort: the kernel keeps at most
/// 15 bytes, and errors are ignored.
func nameKernelThread(_ name: String) {
  #if os(Linux)
    let fd = open("/proc/thread-self/comm", O_WRONLY)
    guard fd >= 0 else { return }
    _ = name.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
    _ = close(fd)
  #endif
}
