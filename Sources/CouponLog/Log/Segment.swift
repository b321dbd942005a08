// Segment files: their 32-byte header, their names, and the handle the writer and the syncer
// share.
//
// A segment is one file of the log: `log-<firstSequence, 20 zero-padded digits>.seg`, so that
// names sort in log order and a name alone says where a file belongs. Its header (all
// little-endian):
//
//     offset  width  field
//          0      8  magic "CPNLOG\r\n" (the CR LF catches text-mode mangling, as PNG's does)
//          8      4  formatVersion (u32, = 1)
//         12      8  salt (u64, random per file)
//         20      8  firstSequence (u64, sequence of the file's first frame; never 0)
//         28      4  crc32c of bytes 0 ..< 28
//
// The header is written and `fdatasync`ed (and the directory `fsync`ed) before any frame is
// appended, so a segment whose header does not verify can only be one whose creation was cut
// short by a crash, or a corrupt one. The salt is mixed into every frame's checksum: frames left
// in a recycled file, or copied from another segment, never verify in this one.

/// Bytes of a segment header; the first frame starts at this offset.
public let segmentHeaderBytes = 32

/// Why bytes are not a valid ``SegmentHeader``.
public enum SegmentHeaderDefect: Error, Sendable, Equatable, CustomStringConvertible {
  /// Fewer than ``segmentHeaderBytes`` bytes.
  case short(Int)
  /// The first eight bytes are not `CPNLOG\r\n`.
  case badMagic
  /// The stored checksum does not match bytes 0 ..< 28.
  case checksumMismatch(stored: UInt32, computed: UInt32)
  /// A format version this code does not read.
  case unsupportedVersion(UInt32)
  /// A first sequence of 0 (sequences start at 1).
  case firstSequenceZero

  /// Whether the defect is what a crash while creating the file leaves behind (a short, empty or
  /// partly written header), as opposed to a verified header with wrong contents.
  public var isTorn: Bool {
    switch self {
    case .short, .badMagic, .checksumMismatch: return true
    case .unsupportedVersion, .firstSequenceZero: return false
    }
  }

  /// What is wrong, in words.
  public var description: String {
    switch self {
    case .short(let count):
      return "segment header is \(count) bytes, \(segmentHeaderBytes) expected"
    case .badMagic:
      return "segment header does not start with the magic CPNLOG\\r\\n"
    case .checksumMismatch(let stored, let computed):
      return "segment header checksum mismatch (stored \(hex(stored)), computed \(hex(computed)))"
    case .unsupportedVersion(let version):
      return "unsupported segment format version \(version)"
    case .firstSequenceZero:
      return "segment header names first sequence 0"
    }
  }
}

/// The header at the start of every segment file.
public struct SegmentHeader: Sendable, Equatable {
  /// The eight magic bytes, `CPNLOG\r\n`.
  public static let magic: [UInt8] = Array("CPNLOG\r\n".utf8)
  /// The format version this code writes and reads.
  public static let currentFormatVersion: UInt32 = 1

  /// The file's format version.
  public var formatVersion: UInt32
  /// The random per-file value mixed into every frame checksum of the file.
  public var salt: UInt64
  /// The sequence number of the file's first frame.
  public var firstSequence: UInt64

  /// A header of the current format version.
  public init(salt: UInt64, firstSequence: UInt64) {
    self.formatVersion = SegmentHeader.currentFormatVersion
    self.salt = salt
    self.firstSequence = firstSequence
  }

  /// The 32 encoded bytes, checksum included.
  public func encoded() -> [UInt8] {
    var writer = ByteWriter(capacity: segmentHeaderBytes)
    writer.appendBytes(SegmentHeader.magic)
    writer.append(formatVersion)
    writer.append(salt)
    writer.append(firstSequence)
    writer.append(CRC32C.checksum(writer.bytes))
    assert(writer.count == segmentHeaderBytes)
    return writer.bytes
  }

  /// Decodes and verifies the header at the start of `bytes` (extra bytes are ignored).
  public init(decoding bytes: UnsafeRawBufferPointer) throws(SegmentHeaderDefect) {
    guard bytes.count >= segmentHeaderBytes else { throw .short(bytes.count) }
    guard bytes.prefix(8).elementsEqual(SegmentHeader.magic) else { throw .badMagic }
    func field<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
      T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }
    let stored = field(28, UInt32.self)
    let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<28]))
    guard stored == computed else { throw .checksumMismatch(stored: stored, computed: computed) }
    formatVersion = field(8, UInt32.self)
    salt = field(12, UInt64.self)
    firstSequence = field(20, UInt64.self)
    guard formatVersion == SegmentHeader.currentFormatVersion else {
      throw .unsupportedVersion(formatVersion)
    }
    guard firstSequence != 0 else { throw .firstSequenceZero }
  }
}

/// Names of segment files: `log-<firstSequence as 20 zero-padded digits>.seg`.
public enum SegmentFile {
  /// The file name of the segment whose first frame has sequence `firstSequence`.
  public static func name(firstSequence: UInt64) -> String {
    SequenceFileName.make(prefix: "log-", firstSequence, suffix: ".seg")
  }

  /// The first sequence a segment file name stands for, or `nil` if `name` is not exactly the
  /// name ``name(firstSequence:)`` produces for some sequence (other files are not segments).
  public static func firstSequence(fromName name: String) -> UInt64? {
    SequenceFileName.sequence(in: name, prefix: "log-", suffix: ".seg")
  }
}

/// File names that carry a sequence number as 20 zero-padded decimal digits between a prefix and
/// a suffix (log segments, snapshots), so that names sort in sequence order.
public enum SequenceFileName {
  /// `prefix`, `sequence` as 20 zero-padded decimal digits, `suffix`.
  public static func make(prefix: String, _ sequence: UInt64, suffix: String) -> String {
    let digits = String(sequence)
    return prefix + String(repeating: "0", count: 20 - digits.count) + digits + suffix
  }

  /// The sequence `name` carries if it is exactly `prefix`, 20 decimal digits and `suffix`
  /// (and the digits fit in 64 bits); otherwise `nil`.
  public static func sequence(in name: String, prefix: String, suffix: String) -> UInt64? {
    let utf8 = Array(name.utf8)
    let prefixCount = prefix.utf8.count
    guard utf8.count == prefixCount + 20 + suffix.utf8.count, utf8.starts(with: prefix.utf8),
      utf8[(prefixCount + 20)...].elementsEqual(suffix.utf8)
    else { return nil }
    var value: UInt64 = 0
    for byte in utf8[prefixCount..<prefixCount + 20] {
      guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
      let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
      let (sum, overflow2) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
      guard !overflow1, !overflow2 else { return nil }
      value = sum
    }
    return value
  }
}

/// An open segment file, shared by the writer thread (which appends to it) and the syncer thread
/// (which makes it durable). The descriptor is closed when the last reference goes away.
///
/// `Sendable` because every stored property is an immutable `Sendable` value; the file system is
/// thread-safe by contract.
public final class SegmentHandle: Sendable {
  /// The segment file's path.
  public let path: String
  /// The sequence number of the segment's first frame.
  public let firstSequence: UInt64
  /// The segment's salt (from its header).
  public let salt: UInt64
  let fileSystem: any FileSystem
  let fd: FileDescriptor

  init(
    fileSystem: any FileSystem, fd: FileDescriptor, path: String, firstSequence: UInt64,
    salt: UInt64
  ) {
    self.fileSystem = fileSystem
    self.fd = fd
    self.path = path
    self.firstSequence = firstSequence
    self.salt = salt
  }

  deinit {
    fileSystem.close(fd)
  }

  /// Makes everything written to the segment durable (`fdatasync`).
  ///
  /// Durability point: when this returns, every frame written to this segment before the call
  /// is on disk. After a failure the store must stop; the call is never retried.
  public func syncData() throws(SystemCallError) {
    do {
      try fileSystem.syncData(fd)
    } catch {
      throw error.withPath(path)
    }
  }
}

/// `0x1234ABCD`.
func hex(_ value: UInt32) -> String {
  let digits = String(value, radix: 16, uppercase: true)
  return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
}
