// Little-endian decoding from borrowed bytes, total on any input.
//
// Every read checks the remaining length before it touches memory and reports a short or
// malformed input as a thrown `ByteReaderError` carrying the offset, never a trap: the reader is
// fed bytes from disk, which may be torn, corrupt or hostile. Integer conversions that could
// overflow (a varint length larger than `Int.max`) are compared as `UInt64` first.

/// Why a ``ByteReader`` could not decode its input.
public enum ByteReaderError: Error, Sendable, Equatable, CustomStringConvertible {
  /// The input ended before the value starting at this offset was complete.
  case truncated(Int)
  /// The bytes at this offset are not a valid encoding; the string says why.
  case malformed(Int, String)

  /// `input ends at offset 12 in the middle of a value`.
  public var description: String {
    switch self {
    case .truncated(let offset):
      return "input ends in the middle of a value starting at offset \(offset)"
    case .malformed(let offset, let reason):
      return "malformed input at offset \(offset): \(reason)"
    }
  }
}

/// Reads little-endian integers, LEB128 varints, raw bytes and length-prefixed strings (the
/// encodings of ``ByteWriter``) from a buffer it does not own.
///
/// The reader borrows `buffer`: use it only while the buffer is alive (inside the
/// `withUnsafeBytes` or record visit that handed it out). It never traps on any input.
public struct ByteReader {
  /// The bytes being read.
  public let buffer: UnsafeRawBufferPointer
  /// The offset of the next byte to read.
  public private(set) var offset: Int

  /// Starts reading `buffer` at offset 0.
  public init(_ buffer: UnsafeRawBufferPointer) {
    self.buffer = buffer
    self.offset = 0
  }

  /// Whether every byte has been read.
  public var isAtEnd: Bool { offset == buffer.count }

  /// The number of bytes not read yet.
  public var remainingCount: Int { buffer.count - offset }

  @inline(__always)
  mutating func take<T: FixedWidthInteger>(_: T.Type) throws(ByteReaderError) -> T {
    let size = MemoryLayout<T>.size
    guard buffer.count - offset >= size else { throw .truncated(offset) }
    let value = buffer.loadUnaligned(fromByteOffset: offset, as: T.self)
    offset += size
    return T(littleEndian: value)
  }

  /// Reads one byte.
  public mutating func readUInt8() throws(ByteReaderError) -> UInt8 {
    try take(UInt8.self)
  }

  /// Reads a little-endian `UInt16`.
  public mutating func readUInt16() throws(ByteReaderError) -> UInt16 {
    try take(UInt16.self)
  }

  /// Reads a little-endian `UInt32`.
  public mutating func readUInt32() throws(ByteReaderError) -> UInt32 {
    try take(UInt32.self)
  }

  /// Reads a little-endian `UInt64`.
  public mutating func readUInt64() throws(ByteReaderError) -> UInt64 {
    try take(UInt64.self)
  }

  /// Reads a little-endian two's complement `Int64`.
  public mutating func readInt64() throws(ByteReaderError) -> Int64 {
    try take(Int64.self)
  }

  /// Reads an unsigned LEB128 varint of at most ten bytes. A value that does not fit in 64 bits
  /// is malformed.
  public mutating func readVarint() throws(ByteReaderError) -> UInt64 {
    let start = offset
    var result: UInt64 = 0
    var shift: UInt64 = 0
    var position = offset
    while true {
      guard position < buffer.count else { throw .truncated(start) }
      let byte = buffer[position]
      position += 1
      if shift == 63 && byte > 1 {
        throw .malformed(start, "varint does not fit in 64 bits")
      }
      result |= UInt64(byte & 0x7F) << shift
      if byte < 0x80 { break }
      shift += 7
    }
    offset = position
    return result
  }

  /// Reads `count` raw bytes and returns them as a slice of the borrowed buffer. A negative count
  /// is malformed.
  public mutating func readBytes(_ count: Int) throws(ByteReaderError) -> UnsafeRawBufferPointer {
    guard count >= 0 else { throw .malformed(offset, "negative byte count \(count)") }
    guard buffer.count - offset >= count else { throw .truncated(offset) }
    let slice = UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + count])
    offset += count
    return slice
  }

  /// The same as ``readBytes(_:)``, with the argument labelled.
  public mutating func readBytes(count: Int) throws(ByteReaderError) -> UnsafeRawBufferPointer {
    try readBytes(count)
  }

  /// Reads a string written by ``ByteWriter/appendString(_:)``: a varint byte count, then that
  /// many bytes of UTF-8, which must be valid.
  public mutating func readString() throws(ByteReaderError) -> String {
    let start = offset
    let length = try readVarint()
    guard length <= UInt64(buffer.count - offset) else {
      offset = start
      throw .truncated(start)
    }
    let bytes = UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + Int(length)])
    guard let string = String(validating: bytes, as: UTF8.self) else {
      offset = start
      throw .malformed(start, "string is not valid UTF-8")
    }
    offset += Int(length)
    return string
  }

  /// Skips `count` bytes. A negative count is malformed.
  public mutating func skip(_ count: Int) throws(ByteReaderError) {
    _ = try readBytes(count)
  }
}
