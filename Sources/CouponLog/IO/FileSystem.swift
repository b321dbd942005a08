// The one seam for every system call the log and the engine make.
//
// Everything that touches the disk goes through a `FileSystem`, as swift-system routes each call
// through one internal shim and LevelDB routes everything through its `Env`. Production uses
// `RealFileSystem` (plain Glibc calls); tests plug a simulated disk in here that drops unsynced
// bytes, tears writes and fails `fdatasync`, without the log or the engine knowing.
//
// Errors from the environment (a full disk, a failed sync, a missing file) are thrown as one value
// type, `SystemCallError`, that names the call, the errno and the path. Misuse by the program (a
// closed descriptor, a negative offset) traps in the implementation instead.

/// An open file or directory descriptor handed out by a ``FileSystem``.
///
/// The value is only meaningful to the file system that returned it.
public struct FileDescriptor: Hashable, Sendable {
  /// The operating system's descriptor number (or a simulated one).
  public let rawValue: Int32

  /// Wraps a descriptor number.
  public init(rawValue: Int32) {
    self.rawValue = rawValue
  }
}

/// A failed system call: which call, the errno it set, and the file or directory concerned.
///
/// This is the only error the file-system seam throws. After a failed `write` or `fdatasync` the
/// store stops (fail-stop); reopening recovers from what is on disk.
public struct SystemCallError: Error, Sendable, Equatable, CustomStringConvertible {
  /// The system call that failed: `"open"`, `"pwrite"`, `"fdatasync"`, `"flock"`, ...
  public var syscall: String
  /// The `errno` the call set (for example `EIO`, `ENOSPC`, `EWOULDBLOCK`).
  public var errno: Int32
  /// The file or directory concerned, or `""` when it is not known.
  public var path: String

  /// Creates an error for a failed call.
  public init(syscall: String, errno: Int32, path: String) {
    self.syscall = syscall
    self.errno = errno
    self.path = path
  }

  /// `open("/data/log-….seg") failed: errno 28 (No space left on device)`.
  public var description: String {
    let target = path.isEmpty ? "" : "\"\(path)\""
    return "\(syscall)(\(target)) failed: errno \(errno) (\(systemErrorMessage(errno)))"
  }

  /// The same error with `path` filled in when it was unknown where the call failed (calls on a
  /// descriptor do not know the file's name; their callers do).
  public func withPath(_ path: String) -> SystemCallError {
    guard self.path.isEmpty else { return self }
    var copy = self
    copy.path = path
    return copy
  }
}

/// How ``FileSystem/openFile(_:options:)`` opens a file. Exactly one of ``readOnly`` and
/// ``readWrite`` must be present.
public struct OpenOptions: OptionSet, Sendable {
  /// The raw bit set.
  public let rawValue: UInt32

  /// Creates options from their raw bits.
  public init(rawValue: UInt32) {
    self.rawValue = rawValue
  }

  /// Open for reading only (`O_RDONLY`).
  public static let readOnly = OpenOptions(rawValue: 1 << 0)
  /// Open for reading and writing (`O_RDWR`).
  public static let readWrite = OpenOptions(rawValue: 1 << 1)
  /// Create the file (mode `0600`) if it does not exist (`O_CREAT`).
  public static let create = OpenOptions(rawValue: 1 << 2)
  /// With ``create``: fail with `EEXIST` if the file exists (`O_EXCL`).
  public static let exclusive = OpenOptions(rawValue: 1 << 3)
  /// Truncate an existing file to zero bytes (`O_TRUNC`).
  public static let truncate = OpenOptions(rawValue: 1 << 4)
}

/// The one seam for every system call of the store: files, directories, syncs and the directory
/// lock.
///
/// Implementations throw ``SystemCallError`` for every failure of the environment and trap on
/// misuse. Positions and sizes are in bytes. A conforming type must be safe to call from several
/// threads at once (the writer thread writes while the syncer thread syncs).
public protocol FileSystem: AnyObject, Sendable {
  /// Opens (or creates, mode `0600`) the file at `path`.
  func openFile(_ path: String, options: OpenOptions) throws(SystemCallError) -> FileDescriptor
  /// Closes a descriptor. Errors are ignored: on Linux the descriptor is released either way, and
  /// durability is decided by the syncs, never by `close`.
  func close(_ fd: FileDescriptor)
  /// Writes all of `bytes` at `offset` (`pwrite`, looping over short writes and `EINTR`).
  func write(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer, at offset: Int64)
    throws(SystemCallError)
  /// Reads into `buffer` from `offset` (`pread`, looping); returns fewer bytes than the buffer
  /// holds only at end of file.
  func read(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64)
    throws(SystemCallError) -> Int
  /// Makes the file's data durable (`fdatasync`). Never retried by callers after a failure.
  func syncData(_ fd: FileDescriptor) throws(SystemCallError)
  /// Makes the file's data and metadata durable (`fsync`).
  func sync(_ fd: FileDescriptor) throws(SystemCallError)
  /// Sets the file's length (`ftruncate`).
  func truncate(_ fd: FileDescriptor, to length: Int64) throws(SystemCallError)
  /// The file's current length (`fstat`).
  func size(of fd: FileDescriptor) throws(SystemCallError) -> Int64
  /// Renames a file atomically (`rename`); durable once the directory is synced.
  func rename(_ from: String, to: String) throws(SystemCallError)
  /// Removes a file (`unlink`); durable once the directory is synced.
  func removeFile(_ path: String) throws(SystemCallError)
  /// The names (not paths) of the entries of a directory, without `.` and `..`, sorted.
  func contentsOfDirectory(_ path: String) throws(SystemCallError) -> [String]
  /// Creates a directory with mode `0700`; an existing directory is not an error.
  func createDirectory(_ path: String) throws(SystemCallError)
  /// Whether anything exists at `path`.
  func fileExists(_ path: String) -> Bool
  /// Makes the directory's entries durable: opens it `O_RDONLY|O_DIRECTORY`, `fsync`s, closes.
  func syncDirectory(_ path: String) throws(SystemCallError)
  /// Opens or creates `path/LOCK` (mode `0600`) and takes `flock(LOCK_EX|LOCK_NB)` on it. When
  /// another process holds it, throws `SystemCallError(syscall: "flock", errno: EWOULDBLOCK)`.
  func lockDirectory(_ path: String) throws(SystemCallError) -> FileDescriptor
  /// Releases a lock taken by ``lockDirectory(_:)`` (`flock(LOCK_UN)`) and closes it.
  func unlock(_ fd: FileDescriptor)
}

extension FileSystem {
  /// Reads a whole file into memory (open, size, read, close).
  ///
  /// Meant for files of bounded size (snapshots, small metadata). If the file shrinks while it is
  /// read, the bytes that were there are returned.
  public func readWholeFile(_ path: String) throws(SystemCallError) -> [UInt8] {
    let fd = try openFile(path, options: .readOnly)
    defer { close(fd) }
    let size: Int64
    do {
      size = try self.size(of: fd)
    } catch {
      throw error.withPath(path)
    }
    var result = [UInt8](repeating: 0, count: Int(size))
    var failure: SystemCallError?
    let count = result.withUnsafeMutableBytes { buffer -> Int in
      do throws(SystemCallError) {
        return try read(fd, into: buffer, at: 0)
      } catch {
        failure = error
        return 0
      }
    }
    if let failure { throw failure.withPath(path) }
    if count < result.count { result.removeLast(result.count - count) }
    return result
  }
}

/// Joins a directory and a name with exactly one `/` between them.
public func joinPath(_ directory: String, _ name: String) -> String {
  if directory.isEmpty { return name }
  return directory.hasSuffix("/") ? directory + name : directory + "/" + name
}
