// Little-endian encoding into a growable byte array.
//
// Fixed-width integers are little-endian on every platform; varints are unsigned LEB128 (seven
// bits per byte, low group first, high bit set on every byte but the last), at most ten bytes for
// a `UInt64`. Strings are a varint byte count followed by their UTF-8 bytes. `ByteReader` reads
// exactly this.

/// Appends little-endian integers, LEB128 varints, raw bytes and length-prefixed strings to a
/// byte array.
///
/// Used to encode log payloads in place: the ``LogWriter`` hands the batch buffer itself to the
/// payload closure, so an event is encoded once, straight where it will be written.
public struct ByteWriter: Sendable {
  /// The bytes written so far.
  public var bytes: [UInt8]

  /// Creates an empty writer.
  public init() {
    bytes = []
  }

  /// Creates an empty writer whose buffer can hold `capacity` bytes without growing.
  public init(capacity: Int) {
    bytes = []
    bytes.reserveCapacity(capacity)
  }

  /// The number of bytes written so far.
  @inlinable public var count: Int { bytes.count }

  /// Makes room for at least `capacity` bytes in total without reallocating.
  public mutating func reserveCapacity(_ capacity: Int) {
    bytes.reserveCapacity(capacity)
  }

  /// Removes every byte; keeps the buffer's storage when `keepingCapacity` is `true`.
  public mutating func removeAll(keepingCapacity: Bool = true) {
    bytes.removeAll(keepingCapacity: keepingCapacity)
  }

  /// Appends one byte.
  @inlinable public mutating func append(_ value: UInt8) {
    bytes.append(value)
  }

  /// Appends a `UInt16`, little-endian (2 bytes).
  @inlinable public mutating func append(_ value: UInt16) {
    appendLittleEndian(value)
  }

  /// Appends a `UInt32`, little-endian (4 bytes).
  @inlinable public mutating func append(_ value: UInt32) {
    appendLittleEndian(value)
  }

  /// Appends a `UInt64`, little-endian (8 bytes).
  @inlinable public mutating func append(_ value: UInt64) {
    appendLittleEndian(value)
  }

  /// Appends an `Int64`, two's complement little-endian (8 bytes).
  @inlinable public mutating func append(_ value: Int64) {
    appendLittleEndian(value)
  }

  @inlinable mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
    withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
  }

  /// Appends `value` as an unsigned LEB128 varint (1 to 10 bytes).
  @inlinable public mutating func appendVarint(_ value: UInt64) {
    var value = value
    while value >= 0x80 {
      bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
      value >>= 7
    }
    bytes.append(UInt8(truncatingIfNeeded: value))
  }

  /// Appends raw bytes, without a length.
  @inlinable public mutating func appendBytes(_ source: some Collection<UInt8>) {
    bytes.append(contentsOf: source)
  }

  /// Appends raw bytes, without a length.
  @inlinable public mutating func appendBytes(_ source: UnsafeRawBufferPointer) {
    bytes.append(contentsOf: source)
  }

  /// Appends a string as a varint UTF-8 byte count followed by its UTF-8 bytes.
  @inlinable public mutating func appendString(_ string: String) {
    let utf8 = string.utf8
    appendVarint(UInt64(utf8.count))
    bytes.append(contentsOf: utf8)
  }

  /// Overwrites four bytes at `offset` with `value`, little-endian (used to fill in a length or a
  /// checksum once what follows it is known). Traps if the bytes were not written yet.
  @inlinable public mutating func patchUInt32(_ value: UInt32, at offset: Int) {
    precondition(
      offset >= 0 && offset <= bytes.count - 4,
      "patchUInt32 at \(offset) outside the \(bytes.count) bytes written")
    bytes.withUnsafeMutableBytes {
      $0.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt32.self)
    }
  }

  /// Overwrites eight bytes at `offset` with `value`, little-endian. Traps if the bytes were not
  /// written yet.
  @inlinable public mutating func patchUInt64(_ value: UInt64, at offset: Int) {
    precondition(
      offset >= 0 && offset <= bytes.count - 8,
      "patchUInt64 at \(offset) outside the \(bytes.count) bytes written")
    bytes.withUnsafeMutableBytes {
      $0.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt64.self)
    }
  }
}
