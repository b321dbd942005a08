// A file system in memory, for the fuzz targets.
//
// Every system call of the log and the engine goes through `FileSystem` (Sources/CouponLog/IO/
// FileSystem.swift), so a fuzz target can run recovery and a whole store without touching the
// disk: thousands of stores a second, no temporary directories to clean up, and nothing a crash
// of the fuzzer leaves behind. It keeps what the seam promises (files are byte arrays that grow
// on write and read short at their end, names are listed sorted, one lock per directory) and
// nothing more: every write is durable at once, nothing fails. The deterministic
// `SimulatedFileSystem` (branch `sim`) adds lost unsynced bytes, torn writes and failing syncs;
// `FuzzDisk.make()` is the one place to switch to it when it lands.

import CouponLog
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The file system the fuzz targets run on. One function, so that swapping in the simulated
/// file system is a one-line change.
enum FuzzDisk {
  /// A fresh, empty file system holding only the root directory `/`.
  static func make() -> MemoryFileSystem { MemoryFileSystem() }
}

/// Files and directories in memory behind the ``FileSystem`` seam.
///
/// `@unchecked Sendable` is not needed: all state is inside one `Mutex`, so any thread may call
/// any method (the store's writer writes while its syncer syncs).
final class MemoryFileSystem: FileSystem {
  private struct State {
    /// Path → inode number.
    var names: [String: Int] = [:]
    /// Inode number → contents. An inode outlives its name while a descriptor is open on it.
    var inodes: [Int: [UInt8]] = [:]
    var directories: Set<String> = ["/"]
    /// Descriptor → inode number.
    var descriptors: [Int32: Int] = [:]
    /// Directories whose `LOCK` is held, with the descriptor holding it.
    var locks: [String: Int32] = [:]
    var nextInode = 1
    var nextDescriptor: Int32 = 3
  }

  private let state = Mutex(State())

  /// An empty file system holding only `/`.
  init() {}

  /// The contents of the file at `path`, or `nil` if there is none.
  func contents(of path: String) -> [UInt8]? {
    state.withLock { state in state.names[path].flatMap { state.inodes[$0] } }
  }

  /// Creates or replaces the file at `path` with `bytes` (its directory must exist).
  func setContents(of path: String, to bytes: [UInt8]) {
    state.withLock { state in
      precondition(state.directories.contains(parent(of: path)), "no directory for \(path)")
      if let inode = state.names[path] {
        state.inodes[inode] = bytes
      } else {
        state.names[path] = state.nextInode
        state.inodes[state.nextInode] = bytes
        state.nextInode += 1
      }
    }
  }

  /// Every file's path and contents, sorted by path: a snapshot to compare before and after.
  func allFiles() -> [(path: String, bytes: [UInt8])] {
    state.withLock { state in
      state.names.keys.sorted().map { ($0, state.inodes[state.names[$0]!]!) }
    }
  }

  func openFile(_ path: String, options: OpenOptions) throws(SystemCallError) -> FileDescriptor {
    precondition(
      options.contains(.readOnly) != options.contains(.readWrite),
      "open \(path): exactly one of .readOnly and .readWrite is required")
    let result = state.withLock { state -> Result<FileDescriptor, SystemCallError> in
      var inode = state.names[path]
      if inode != nil, options.contains(.create), options.contains(.exclusive) {
        return .failure(SystemCallError(syscall: "open", errno: EEXIST, path: path))
      }
      if inode == nil {
        guard options.contains(.create) else {
          return .failure(SystemCallError(syscall: "open", errno: ENOENT, path: path))
        }
        guard state.directories.contains(parent(of: path)) else {
          return .failure(SystemCallError(syscall: "open", errno: ENOENT, path: path))
        }
        guard !state.directories.contains(path) else {
          return .failure(SystemCallError(syscall: "open", errno: EISDIR, path: path))
        }
        inode = state.nextInode
        state.names[path] = state.nextInode
        state.inodes[state.nextInode] = []
        state.nextInode += 1
      }
      if options.contains(.truncate), !options.contains(.readOnly) {
        state.inodes[inode!] = []
      }
      let fd = state.nextDescriptor
      state.nextDescriptor += 1
      state.descriptors[fd] = inode!
      return .success(FileDescriptor(rawValue: fd))
    }
    return try result.get()
  }

  func close(_ fd: FileDescriptor) {
    state.withLock { state in
      precondition(state.descriptors[fd.rawValue] != nil, "close of unknown descriptor \(fd)")
      let inode = state.descriptors.removeValue(forKey: fd.rawValue)!
      collect(inode, in: &state)
    }
  }

  func write(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer, at offset: Int64)
    throws(SystemCallError)
  {
    precondition(offset >= 0, "pwrite at negative offset \(offset)")
    state.withLock { state in
      let inode = descriptor(fd, in: state)
      let start = Int(offset)
      let end = start + bytes.count
      if state.inodes[inode]!.count < end {
        state.inodes[inode]!.append(
          contentsOf: repeatElement(0, count: end - state.inodes[inode]!.count))
      }
      state.inodes[inode]!.withUnsafeMutableBytes { file in
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        (file.baseAddress! + start).copyMemory(from: base, byteCount: bytes.count)
      }
    }
  }

  func read(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64)
    throws(SystemCallError) -> Int
  {
    precondition(offset >= 0, "pread at negative offset \(offset)")
    return state.withLock { state in
      let inode = descriptor(fd, in: state)
      let file = state.inodes[inode]!
      guard offset < file.count else { return 0 }
      let count = min(buffer.count, file.count - Int(offset))
      file.withUnsafeBytes { source in
        buffer.baseAddress!.copyMemory(
          from: source.baseAddress! + Int(offset), byteCount: count)
      }
      return count
    }
  }

  func syncData(_ fd: FileDescriptor) throws(SystemCallError) {
    state.withLock { state in _ = descriptor(fd, in: state) }
  }

  func sync(_ fd: FileDescriptor) throws(SystemCallError) {
    state.withLock { state in _ = descriptor(fd, in: state) }
  }

  func truncate(_ fd: FileDescriptor, to length: Int64) throws(SystemCallError) {
    precondition(length >= 0, "ftruncate to negative length \(length)")
    state.withLock { state in
      let inode = descriptor(fd, in: state)
      let count = state.inodes[inode]!.count
      if Int(length) < count {
        state.inodes[inode]!.removeLast(count - Int(length))
      } else {
        state.inodes[inode]!.append(contentsOf: repeatElement(0, count: Int(length) - count))
      }
    }
  }

  func size(of fd: FileDescriptor) throws(SystemCallError) -> Int64 {
    state.withLock { state in Int64(state.inodes[descriptor(fd, in: state)]!.count) }
  }

  func rename(_ from: String, to: String) throws(SystemCallError) {
    let result = state.withLock { state -> Result<Void, SystemCallError> in
      guard let inode = state.names.removeValue(forKey: from) else {
        return .failure(SystemCallError(syscall: "rename", errno: ENOENT, path: from))
      }
      if let replaced = state.names.updateValue(inode, forKey: to) {
        collect(replaced, in: &state)
      }
      return .success(())
    }
    try result.get()
  }

  func removeFile(_ path: String) throws(SystemCallError) {
    let result = state.withLock { state -> Result<Void, SystemCallError> in
      guard let inode = state.names.removeValue(forKey: path) else {
        return .failure(SystemCallError(syscall: "unlink", errno: ENOENT, path: path))
      }
      collect(inode, in: &state)
      return .success(())
    }
    try result.get()
  }

  func contentsOfDirectory(_ path: String) throws(SystemCallError) -> [String] {
    let result = state.withLock { state -> Result<[String], SystemCallError> in
      guard state.directories.contains(path) else {
        return .failure(SystemCallError(syscall: "opendir", errno: ENOENT, path: path))
      }
      let entries =
        state.names.keys.filter { parent(of: $0) == path }
        + state.directories.filter { $0 != "/" && parent(of: $0) == path }
      return .success(entries.map { name(of: $0) }.sorted())
    }
    return try result.get()
  }

  func createDirectory(_ path: String) throws(SystemCallError) {
    let result = state.withLock { state -> Result<Void, SystemCallError> in
      if state.directories.contains(path) { return .success(()) }
      guard state.names[path] == nil else {
        return .failure(SystemCallError(syscall: "mkdir", errno: EEXIST, path: path))
      }
      guard state.directories.contains(parent(of: path)) else {
        return .failure(SystemCallError(syscall: "mkdir", errno: ENOENT, path: path))
      }
      state.directories.insert(path)
      return .success(())
    }
    try result.get()
  }

  func fileExists(_ path: String) -> Bool {
    state.withLock { state in state.names[path] != nil || state.directories.contains(path) }
  }

  func syncDirectory(_ path: String) throws(SystemCallError) {
    let exists = state.withLock { state in state.directories.contains(path) }
    guard exists else { throw SystemCallError(syscall: "open", errno: ENOENT, path: path) }
  }

  func lockDirectory(_ path: String) throws(SystemCallError) -> FileDescriptor {
    let held = state.withLock { state in state.locks[path] != nil }
    if held { throw SystemCallError(syscall: "flock", errno: EWOULDBLOCK, path: path) }
    let fd = try openFile(path + "/LOCK", options: [.readWrite, .create])
    state.withLock { state in state.locks[path] = fd.rawValue }
    return fd
  }

  func unlock(_ fd: FileDescriptor) {
    state.withLock { state in
      guard let entry = state.locks.first(where: { $0.value == fd.rawValue }) else {
        preconditionFailure("unlock of a descriptor that holds no lock")
      }
      state.locks[entry.key] = nil
    }
    close(fd)
  }

  /// The inode behind an open descriptor; using a closed one is a programmer error.
  private func descriptor(_ fd: FileDescriptor, in state: State) -> Int {
    guard let inode = state.descriptors[fd.rawValue] else {
      preconditionFailure("use of closed or unknown descriptor \(fd.rawValue)")
    }
    return inode
  }

  /// Frees an inode that has neither a name nor an open descriptor.
  private func collect(_ inode: Int, in state: inout State) {
    if !state.names.values.contains(inode), !state.descriptors.values.contains(inode) {
      state.inodes[inode] = nil
    }
  }
}

/// The directory part of a path (`/a/b` → `/a`, `/a` → `/`).
private func parent(of path: String) -> String {
  guard let slash = path.lastIndex(of: "/") else { return "" }
  return slash == path.startIndex ? "/" : String(path[..<slash])
}

/// The last component of a path.
private func name(of path: String) -> String {
  guard let slash = path.lastIndex(of: "/") else { return path }
  return String(path[path.index(after: slash)...])
}
