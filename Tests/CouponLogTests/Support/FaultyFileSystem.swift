import CouponLog
import Glibc
import Synchronization

/// The real file system with switches that make writes or syncs fail, the way a full or dying
/// disk does.
final class FaultyFileSystem: FileSystem {
  let base = RealFileSystem()
  /// When set, every `write` fails with `EIO`.
  let failWrites = Atomic<Bool>(false)
  /// When set, every `syncData` fails with `EIO`.
  let failSyncs = Atomic<Bool>(false)
  /// How many `write` calls were made.
  let writeCount = Atomic<Int>(0)

  func openFile(_ path: String, options: OpenOptions) throws(SystemCallError) -> FileDescriptor {
    try base.openFile(path, options: options)
  }
  func close(_ fd: FileDescriptor) { base.close(fd) }
  func write(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer, at offset: Int64)
    throws(SystemCallError)
  {
    writeCount.add(1, ordering: .relaxed)
    if failWrites.load(ordering: .relaxed) {
      throw SystemCallError(syscall: "pwrite", errno: EIO, path: "")
    }
    try base.write(fd, bytes, at: offset)
  }
  func read(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64)
    throws(SystemCallError) -> Int
  {
    try base.read(fd, into: buffer, at: offset)
  }
  func syncData(_ fd: FileDescriptor) throws(SystemCallError) {
    if failSyncs.load(ordering: .relaxed) {
      throw SystemCallError(syscall: "fdatasync", errno: EIO, path: "")
    }
    try base.syncData(fd)
  }
  func sync(_ fd: FileDescriptor) throws(SystemCallError) { try base.sync(fd) }
  func truncate(_ fd: FileDescriptor, to length: Int64) throws(SystemCallError) {
    try base.truncate(fd, to: length)
  }
  func size(of fd: FileDescriptor) throws(SystemCallError) -> Int64 { try base.size(of: fd) }
  func rename(_ from: String, to: String) throws(SystemCallError) {
    try base.rename(from, to: to)
  }
  func removeFile(_ path: String) throws(SystemCallError) { try base.removeFile(path) }
  func contentsOfDirectory(_ path: String) throws(SystemCallError) -> [String] {
    try base.contentsOfDirectory(path)
  }
  func createDirectory(_ path: String) throws(SystemCallError) { try base.createDirectory(path) }
  func fileExists(_ path: String) -> Bool { base.fileExists(path) }
  func syncDirectory(_ path: String) throws(SystemCallError) { try base.syncDirectory(path) }
  func lockDirectory(_ path: String) throws(SystemCallError) -> FileDescriptor {
    try base.lockDirectory(path)
  }
  func unlock(_ fd: FileDescriptor) { base.unlock(fd) }
}
