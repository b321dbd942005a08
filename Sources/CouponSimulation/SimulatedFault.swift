// Operations of the simulated file system, and the faults that can be injected into them.

import Glibc

/// The operations of a ``SimulatedFileSystem`` that can fail, and so are counted and can have a
/// fault injected. (`close`, `unlock` and `fileExists` cannot fail and are not counted.)
public enum SimulatedOperation: String, Sendable, Hashable, CaseIterable {
  /// `openFile` (`open`).
  case openFile
  /// `write` (`pwrite`).
  case write
  /// `read` (`pread`).
  case read
  /// `syncData` (`fdatasync`).
  case syncData
  /// `sync` (`fsync` of a file).
  case sync
  /// `truncate` (`ftruncate`).
  case truncate
  /// `size(of:)` (`fstat`).
  case size
  /// `rename`.
  case rename
  /// `removeFile` (`unlink`).
  case removeFile
  /// `contentsOfDirectory` (`opendir`/`readdir`).
  case listDirectory
  /// `createDirectory` (`mkdir`).
  case createDirectory
  /// `syncDirectory` (`fsync` of a directory).
  case syncDirectory
  /// `lockDirectory` (`open` + `flock`).
  case lockDirectory

  /// The system call a real file system would report for this operation.
  public var syscall: String {
    switch self {
    case .openFile: "open"
    case .write: "pwrite"
    case .read: "pread"
    case .syncData: "fdatasync"
    case .sync, .syncDirectory: "fsync"
    case .truncate: "ftruncate"
    case .size: "fstat"
    case .rename: "rename"
    case .removeFile: "unlink"
    case .listDirectory: "opendir"
    case .createDirectory: "mkdir"
    case .lockDirectory: "flock"
    }
  }
}

/// A failure to inject: the first counted operation numbered `operation` or later whose kind is
/// in `kinds` (any kind if `kinds` is empty) fails with `errno`.
///
/// ```swift
/// fs.inject(SimulatedFault(operation: 17))                                 // the 17th op: EIO
/// fs.inject(SimulatedFault(operation: 1, errno: ENOSPC, kinds: [.write]))  // the first write
/// fs.inject(SimulatedFault(operation: 40, kinds: [.syncData], persistent: true))  // dying disk
/// ```
///
/// What a fault leaves behind: a failed `write` may have written any prefix of its bytes (a short
/// write followed by the error); a failed `syncData`/`sync` may have made any prefix of the file's
/// unsynced changes durable, and the others are lost for good, though reads still return them
/// until a crash (Linux drops dirty pages after a writeback error); a failed `syncDirectory` may
/// have made a prefix of the name changes durable, the rest stay pending. Every other failed
/// operation changes nothing.
public struct SimulatedFault: Sendable, Hashable {
  /// The operation number (1-based, see ``SimulatedFileSystem/operationCount``) at or after which
  /// the fault fires.
  public var operation: Int
  /// The error the operation fails with (`EIO`, `ENOSPC`, ...).
  public var errno: Int32
  /// The kinds of operation the fault may hit; empty means any.
  public var kinds: Set<SimulatedOperation>
  /// Whether every later matching operation fails too (a dead disk), not only the first.
  public var persistent: Bool

  /// Describes a fault. By default: `EIO`, any kind of operation, once.
  public init(
    operation: Int, errno: Int32 = EIO, kinds: Set<SimulatedOperation> = [],
    persistent: Bool = false
  ) {
    precondition(operation >= 1, "operations are numbered from 1")
    self.operation = operation
    self.errno = errno
    self.kinds = kinds
    self.persistent = persistent
  }

  func matches(_ kind: SimulatedOperation, number: Int) -> Bool {
    number >= operation && (kinds.isEmpty || kinds.contains(kind))
  }
}

/// A fault that fired: which operation it hit.
public struct FiredFault: Sendable, Hashable, CustomStringConvertible {
  /// The operation's number.
  public var operation: Int
  /// The operation's kind.
  public var kind: SimulatedOperation
  /// The errno it failed with.
  public var errno: Int32
  /// The file or directory concerned.
  public var path: String
  /// The kernel's name of the thread that made the call (`cs-snapshotter`, …), if it has one:
  /// tells a failure of the log, which must stop the store, from a failure of a background job.
  public var thread: String? = nil

  /// `#17 fdatasync(/store/log-….seg) failed with errno 5`.
  public var description: String {
    "#\(operation) \(kind.syscall)(\(path)) failed with errno \(errno)"
  }
}

/// A bit flipped in synced data (a latent sector error).
public struct BitFlip: Sendable, Hashable, CustomStringConvertible {
  /// The file's path.
  public var path: String
  /// The byte's offset in the file.
  public var offset: Int
  /// The bit, 0 (least significant) to 7.
  public var bit: Int

  /// Describes a flip.
  public init(path: String, offset: Int, bit: Int) {
    precondition((0...7).contains(bit), "a byte has bits 0 to 7")
    self.path = path
    self.offset = offset
    self.bit = bit
  }

  /// `bit 3 of byte 120 of /store/log-….seg`.
  public var description: String { "bit \(bit) of byte \(offset) of \(path)" }
}
