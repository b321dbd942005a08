// The production file system: one Glibc call per seam method.
//
// Every descriptor is opened `O_CLOEXEC` so that a child process never inherits a segment or the
// directory lock. Files are created `0600` and directories `0700`: coupon codes are bearer
// secrets. Reads and writes loop over short transfers and retry `EINTR`; syncs do not retry
// anything, because after a failed `fdatasync` the kernel may already have dropped the dirty pages
// and a second call could report success for data that is gone.

import Glibc

/// The file system of the running process, through plain Glibc calls.
///
/// Stateless, hence `Sendable` without locks: every method is one or a few system calls on the
/// arguments it is given.
public final class RealFileSystem: FileSystem {
  /// Creates the (stateless) real file system.
  public init() {}

  /// Opens or creates a file (mode `0600`, `O_CLOEXEC`), retrying `EINTR`.
  public func openFile(_ path: String, options: OpenOptions) throws(SystemCallError)
    -> FileDescriptor
  {
    let readOnly = options.contains(.readOnly)
    precondition(
      readOnly != options.contains(.readWrite),
      "open \(path): exactly one of .readOnly and .readWrite is required")
    var flags = O_CLOEXEC | (readOnly ? O_RDONLY : O_RDWR)
    if options.contains(.create) { flags |= O_CREAT }
    if options.contains(.exclusive) { flags |= O_EXCL }
    if options.contains(.truncate) { flags |= O_TRUNC }
    while true {
      let fd = Glibc.open(path, flags, mode_t(0o600))
      if fd >= 0 { return FileDescriptor(rawValue: fd) }
      let code = Glibc.errno
      if code == EINTR { continue }
      throw SystemCallError(syscall: "open", errno: code, path: path)
    }
  }

  /// Closes the descriptor; errors are ignored (and `EINTR` is not retried: Linux has released
  /// the descriptor already, and a retry could close one another thread just opened).
  public func close(_ fd: FileDescriptor) {
    _ = Glibc.close(fd.rawValue)
  }

  /// `pwrite` until every byte is written; retries `EINTR` and short writes.
  public func write(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer, at offset: Int64)
    throws(SystemCallError)
  {
    precondition(offset >= 0, "pwrite at negative offset \(offset)")
    guard var pointer = bytes.baseAddress else { return }
    var remaining = bytes.count
    var position = offset
    while remaining > 0 {
      let written = Glibc.pwrite(fd.rawValue, pointer, remaining, off_t(position))
      if written < 0 {
        let code = Glibc.errno
        if code == EINTR { continue }
        throw SystemCallError(syscall: "pwrite", errno: code, path: pathOf(fd))
      }
      if written == 0 {
        // POSIX leaves a zero-byte pwrite of a nonzero count unexplained; looping could spin
        // forever, so it is reported as the device refusing the write.
        throw SystemCallError(syscall: "pwrite", errno: EIO, path: pathOf(fd))
      }
      pointer += written
      remaining -= written
      position += Int64(written)
    }
  }

  /// `pread` until the buffer is full or the file ends; retries `EINTR` and short reads.
  public func read(
    _ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64
  ) throws(SystemCallError) -> Int {
    precondition(offset >= 0, "pread at negative offset \(offset)")
    guard let base = buffer.baseAddress else { return 0 }
    var total = 0
    while total < buffer.count {
      let count = Glibc.pread(
        fd.rawValue, base + total, buffer.count - total, off_t(offset + Int64(total)))
      if count < 0 {
        let code = Glibc.errno
        if code == EINTR { continue }
        throw SystemCallError(syscall: "pread", errno: code, path: pathOf(fd))
      }
      if count == 0 { break }
      total += count
    }
    return total
  }

  /// `fdatasync`, not retried on any error (fail-stop).
  public func syncData(_ fd: FileDescriptor) throws(SystemCallError) {
    if Glibc.fdatasync(fd.rawValue) != 0 {
      throw SystemCallError(syscall: "fdatasync", errno: Glibc.errno, path: pathOf(fd))
    }
  }

  /// `fsync`, not retried on any error (fail-stop).
  public func sync(_ fd: FileDescriptor) throws(SystemCallError) {
    if Glibc.fsync(fd.rawValue) != 0 {
      throw SystemCallError(syscall: "fsync", errno: Glibc.errno, path: pathOf(fd))
    }
  }

  /// `ftruncate`, retrying `EINTR`.
  public func truncate(_ fd: FileDescriptor, to length: Int64) throws(SystemCallError) {
    precondition(length >= 0, "ftruncate to negative length \(length)")
    while Glibc.ftruncate(fd.rawValue, off_t(length)) != 0 {
      let code = Glibc.errno
      if code == EINTR { continue }
      throw SystemCallError(syscall: "ftruncate", errno: code, path: pathOf(fd))
    }
  }

  /// The length from `fstat`.
  public func size(of fd: FileDescriptor) throws(SystemCallError) -> Int64 {
    var info = stat()
    if Glibc.fstat(fd.rawValue, &info) != 0 {
      throw SystemCallError(syscall: "fstat", errno: Glibc.errno, path: pathOf(fd))
    }
    return Int64(info.st_size)
  }

  /// `rename`; the error names the source path.
  public func rename(_ from: String, to: String) throws(SystemCallError) {
    if Glibc.rename(from, to) != 0 {
      throw SystemCallError(syscall: "rename", errno: Glibc.errno, path: from)
    }
  }

  /// `unlink`.
  public func removeFile(_ path: String) throws(SystemCallError) {
    if Glibc.unlink(path) != 0 {
      throw SystemCallError(syscall: "unlink", errno: Glibc.errno, path: path)
    }
  }

  /// `opendir` + `readdir`; names sorted by their UTF-8 bytes, `.` and `..` left out.
  public func contentsOfDirectory(_ path: String) throws(SystemCallError) -> [String] {
    guard let directory = Glibc.opendir(path) else {
      throw SystemCallError(syscall: "opendir", errno: Glibc.errno, path: path)
    }
    defer { _ = Glibc.closedir(directory) }
    var names: [String] = []
    while true {
      // readdir returns nil both at the end and on error; only errno tells them apart.
      Glibc.errno = 0
      guard let entry = Glibc.readdir(directory) else {
        let code = Glibc.errno
        if code != 0 { throw SystemCallError(syscall: "readdir", errno: code, path: path) }
        break
      }
      let name = withUnsafePointer(to: &entry.pointee.d_name) { tuple in
        tuple.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: tuple.pointee))
        { String(cString: $0) }
      }
      if name != "." && name != ".." { names.append(name) }
    }
    names.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    return names
  }

  /// `mkdir` with mode `0700`; `EEXIST` is accepted when a directory is already there.
  public func createDirectory(_ path: String) throws(SystemCallError) {
    if Glibc.mkdir(path, mode_t(0o700)) == 0 { return }
    let code = Glibc.errno
    if code == EEXIST {
      var info = stat()
      if stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR { return }
    }
    throw SystemCallError(syscall: "mkdir", errno: code, path: path)
  }

  /// Whether `stat` succeeds on `path`.
  public func fileExists(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0
  }

  /// Opens the directory `O_RDONLY|O_DIRECTORY`, `fsync`s it and closes it.
  public func syncDirectory(_ path: String) throws(SystemCallError) {
    var fd: Int32
    repeat {
      fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    } while fd < 0 && Glibc.errno == EINTR
    if fd < 0 { throw SystemCallError(syscall: "open", errno: Glibc.errno, path: path) }
    defer { _ = Glibc.close(fd) }
    if Glibc.fsync(fd) != 0 {
      throw SystemCallError(syscall: "fsync", errno: Glibc.errno, path: path)
    }
  }

  /// Opens or creates `path/LOCK` and takes `flock(LOCK_EX|LOCK_NB)`.
  ///
  /// `flock` and not `fcntl` record locks, because record locks belong to the process and are
  /// silently dropped when any descriptor of the file is closed; an `flock` belongs to this one
  /// open file description, so a second open of the same store, even from this process, fails.
  public func lockDirectory(_ path: String) throws(SystemCallError) -> FileDescriptor {
    let lockPath = joinPath(path, "LOCK")
    let fd = try openFile(lockPath, options: [.readWrite, .create])
    while flock(fd.rawValue, LOCK_EX | LOCK_NB) != 0 {
      let code = Glibc.errno
      if code == EINTR { continue }
      close(fd)
      throw SystemCallError(syscall: "flock", errno: code, path: lockPath)
    }
    return fd
  }

  /// `flock(LOCK_UN)`, then `close`.
  public func unlock(_ fd: FileDescriptor) {
    _ = flock(fd.rawValue, LOCK_UN)
    close(fd)
  }

  /// Best-effort name of an open descriptor, for error messages only: calls on a descriptor do
  /// not know their path, and keeping a table here would make this type stateful.
  private func pathOf(_ fd: FileDescriptor) -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = buffer.withUnsafeMutableBufferPointer { pointer in
      Glibc.readlink("/proc/self/fd/\(fd.rawValue)", pointer.baseAddress!, pointer.count - 1)
    }
    guard count > 0 else { return "" }
    return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }
}

/// The C library's message for an errno value (`strerror`; glibc's table is immutable).
func systemErrorMessage(_ code: Int32) -> String {
  guard let message = Glibc.strerror(code) else { return "unknown error" }
  return String(cString: message)
}
