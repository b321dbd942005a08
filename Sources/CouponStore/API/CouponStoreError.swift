import CouponLog

/// The one error type of CouponStore.
///
/// Rejections that are part of the business (sold out, limit reached, not started…) are *values*
/// of the result enums, never errors. Errors are for bad input (``Code/invalidArgument``), for the
/// environment (I/O failures, a locked directory, corruption on disk) and for using a store that
/// is closed or has stopped.
///
/// Every error carries a ``message`` that says what happened and what to do, and where it applies
/// the field, the path and offset, and the system call and `errno` behind it.
public struct CouponStoreError: Error, Sendable, CustomStringConvertible {
  /// What kind of error this is. Extensible: new codes may be added in later versions.
  public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The code's stable name, as printed and as a tool may match on.
    public let rawValue: String
    /// Creates a code from its name.
    public init(rawValue: String) { self.rawValue = rawValue }
    /// The code's name.
    public var description: String { rawValue }

    /// An argument is malformed or out of range; ``CouponStoreError/field`` names it. Nothing was
    /// written.
    public static let invalidArgument = Code(rawValue: "invalidArgument")
    /// A system call failed; ``CouponStoreError/syscall``, ``CouponStoreError/errno`` and
    /// ``CouponStoreError/path`` say which. A failed write or sync stops the store.
    public static let io = Code(rawValue: "io")
    /// Another process (or another open store in this process) holds the directory's lock.
    public static let locked = Code(rawValue: "locked")
    /// The store was closed by ``CouponStore/close()``.
    public static let closed = Code(rawValue: "closed")
    /// The store stopped after an I/O failure (fail-stop); reopen it to recover from disk.
    public static let stopped = Code(rawValue: "stopped")
    /// Data on disk is damaged before the end of the log; ``CouponStoreError/path`` and
    /// ``CouponStoreError/offset`` locate it.
    public static let corruption = Code(rawValue: "corruption")
    /// The data directory holds a file CouponStore did not write.
    public static let unrecognizedFile = Code(rawValue: "unrecognizedFile")
    /// A request id was reused for a different request.
    public static let requestIDConflict = Code(rawValue: "requestIDConflict")
    /// A campaign id is already taken.
    public static let campaignExists = Code(rawValue: "campaignExists")
    /// The code space of a pattern is exhausted: no unused code could be found.
    public static let codeSpaceExhausted = Code(rawValue: "codeSpaceExhausted")
    /// A store-wide capacity limit (coupons, users, bytes) would be exceeded.
    public static let capacityExceeded = Code(rawValue: "capacityExceeded")
  }

  /// What kind of error this is.
  public var code: Code
  /// What happened and what to do about it, in a sentence or two.
  public var message: String
  /// The argument at fault, for ``Code/invalidArgument`` (e.g. `"stock"`, `"user"`).
  public var field: String?
  /// The file or directory concerned.
  public var path: String?
  /// The byte offset in ``path`` where corruption was found.
  public var offset: Int64?
  /// The system call that failed (e.g. `"fdatasync"`).
  public var syscall: String?
  /// The `errno` the system call returned.
  public var errno: Int32?

  /// Creates an error. Prefer the static factories.
  public init(
    code: Code, message: String, field: String? = nil, path: String? = nil, offset: Int64? = nil,
    syscall: String? = nil, errno: Int32? = nil
  ) {
    self.code = code
    self.message = message
    self.field = field
    self.path = path
    self.offset = offset
    self.syscall = syscall
    self.errno = errno
  }

  /// A one-line rendering: code, message, and every location and cause that is set.
  public var description: String {
    var text = "CouponStoreError.\(code): \(message)"
    if let field { text += " [field: \(field)]" }
    if let path { text += " [path: \(path)]" }
    if let offset { text += " [offset: \(offset)]" }
    if let syscall { text += " [syscall: \(syscall)]" }
    if let errno { text += " [errno: \(errno) \(errnoName(errno))]" }
    return text
  }

  static func invalid(_ field: String, _ message: String) -> CouponStoreError {
    CouponStoreError(code: .invalidArgument, message: message, field: field)
  }

  static func io(_ error: SystemCallError, while action: String) -> CouponStoreError {
    CouponStoreError(
      code: .io,
      message: "\(error.syscall) failed while \(action); check the disk and permissions, then "
        + "reopen the store (it recovers from what is on disk)",
      path: error.path, syscall: error.syscall, errno: error.errno)
  }

  static let closedError = CouponStoreError(
    code: .closed, message: "the store is closed; open it again to use it")
}

func errnoName(_ code: Int32) -> String {
  String(cString: strerror(code))
}

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif
