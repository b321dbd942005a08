// The frame: how one log record is laid out on disk.
//
// A segment file is a 32-byte segment header (see Segment.swift) followed by frames back to back,
// with no padding and no blocks. Every frame is a 20-byte header and a payload, all integers
// little-endian:
//
//     offset  width  field
//          0      4  crc            CRC-32C (Castagnoli) of: the segment's salt as 8 LE bytes,
//                                   then this frame's bytes 4 ..< 20 + payloadLength
//          4      4  payloadLength  u32, 0 ... recordBytesMax (1 MiB)
//          8      8  sequence       u64, consecutive across the whole log, never 0
//         16      1  type           u8, chosen by the engine; 0 is invalid
//         17      3  syncLag        u24: sequence minus the last sequence the writer knew to be
//                                   durable when it wrote this frame; 1 ... sequence, saturated
//                                   at 0xFFFFFF (= "unknown"); 0 is invalid
//         20      n  payload        payloadLength bytes, opaque to the log
//
// Why each part is there:
// - The checksum covers the length, the sequence and the type as well as the payload, so a torn
//   header is caught like a torn payload. It is written first so that a reader can tell "all
//   zeros" (a file extended but never written) from a frame: a zero length, a zero type and a
//   zero sequence are all invalid.
// - The salt is a random number in each segment's header. Mixing it into every checksum ties each
//   frame to its file's generation: frames left over in a recycled or preallocated file, or
//   copied from another segment, never verify here, so they cannot be replayed as new records.
// - The sequence number ties each frame to its predecessor: the first frame of a segment carries
//   the header's firstSequence and every next frame the previous one plus one. A frame that
//   verifies but carries the wrong sequence is as invalid as a torn one.
// - The length is bounded, so a corrupt length can never make a reader allocate or skip gigabytes.
// - The sync lag lets recovery tell a torn write from corruption when a valid frame follows an
//   invalid one: a power loss may persist any subset of the pages written since the last sync,
//   so an unsynced frame can be lost while a later unsynced frame survives. A later frame whose
//   known-durable sequence (sequence − syncLag) reaches the invalid frame's sequence proves the
//   invalid frame had been synced before: that is corruption. Otherwise it is crash damage.
//
// What a reader does with an invalid frame is the business of Recovery.swift: at the end of the
// last segment it is a torn tail (cut), anywhere else it is corruption (refuse to open).
//
// The writer encodes a frame straight into its batch buffer: header with the length and checksum
// left zero, the payload appended by the caller's closure, then the length and the checksum
// patched in. In debug builds the frame is decoded again right away, so an encoder bug is caught
// where it happens rather than at the next recovery.

/// Bytes of a frame header; the payload starts at this offset in the frame.
public let frameHeaderBytes = 20

/// Largest payload of one frame (1 MiB). Larger records are a programmer error: the engine splits
/// them (a code upload is chunked into several events).
public let recordBytesMax = 1 << 20

/// Encoding and decoding of log frames (the byte layout is described at the top of
/// `Frame.swift` and in `FORMAT.md`).
public enum Frame {
  /// The fields of a verified frame header.
  public struct Header: Sendable, Equatable {
    /// The stored checksum.
    public var checksum: UInt32
    /// Bytes of payload after the 20-byte header.
    public var payloadLength: Int
    /// The frame's sequence number.
    public var sequence: UInt64
    /// The engine's record type (never 0).
    public var type: UInt8
    /// The last sequence the writer knew to be durable when it wrote this frame (0: unknown).
    public var durableSequence: UInt64

    /// Bytes of the whole frame, header included.
    public var frameBytes: Int { frameHeaderBytes + payloadLength }
  }

  /// Why bytes are not a valid frame.
  public enum Defect: Sendable, Equatable, CustomStringConvertible {
    /// The type byte is 0.
    case typeZero
    /// The sync lag is 0 or exceeds the sequence.
    case syncLagInvalid(UInt32)
    /// The length field exceeds ``recordBytesMax``.
    case payloadTooLong(UInt32)
    /// The stored checksum does not match the frame's bytes under this segment's salt.
    case checksumMismatch(stored: UInt32, computed: UInt32)
    /// The frame verifies but does not carry the next sequence number.
    case unexpectedSequence(expected: UInt64, found: UInt64)

    /// What is wrong, in words.
    public var description: String {
      switch self {
      case .typeZero: return "frame type is 0"
      case .syncLagInvalid(let lag): return "frame sync lag \(lag) is invalid"
      case .payloadTooLong(let length):
        return "frame payload length \(length) exceeds recordBytesMax \(recordBytesMax)"
      case .checksumMismatch(let stored, let computed):
        return "frame checksum mismatch (stored \(hex(stored)), computed \(hex(computed)))"
      case .unexpectedSequence(let expected, let found):
        return "frame sequence \(found) where \(expected) was expected"
      }
    }
  }

  /// What ``decode(_:at:seed:expectedSequence:)`` found at an offset.
  public enum Decoded: Sendable, Equatable {
    /// A valid frame; its payload is the `payloadLength` bytes after the header.
    case valid(Header)
    /// The buffer ends before the frame does: at least `bytesNeeded` bytes from the offset are
    /// required to decide (20 for a header, or the whole frame once its length is known).
    case incomplete(bytesNeeded: Int)
    /// The bytes are not a valid frame.
    case invalid(Defect)
  }

  /// The saturated sync lag, meaning "the durable sequence is unknown".
  public static let syncLagUnknown: UInt32 = 0xFF_FFFF

  /// The checksum state after a segment's salt: every frame checksum of the segment continues
  /// from a copy of it.
  public static func checksumSeed(salt: UInt64) -> CRC32C {
    var crc = CRC32C()
    crc.update(littleEndian: salt)
    return crc
  }

  /// Appends one frame to `writer`: the header, then the payload written by `payload`, then
  /// patches in the payload length and the checksum (salted by `seed`). Returns the offset of the
  /// frame in `writer`.
  ///
  /// Traps if the payload exceeds ``recordBytesMax``, if `type` is 0, if `sequence` is 0, or if
  /// the closure removed bytes (it may only append): each is a programmer error.
  @discardableResult
  public static func append(
    to writer: inout ByteWriter, sequence: UInt64, type: UInt8, seed: CRC32C,
    durableSequence: UInt64 = 0, payload: (inout ByteWriter) -> Void
  ) -> Int {
    precondition(type != 0, "frame type 0 is reserved as invalid")
    precondition(sequence != 0, "frame sequence 0 is reserved as invalid")
    precondition(durableSequence < sequence, "a frame cannot be durable before it is written")
    let lag = UInt32(min(sequence - durableSequence, UInt64(syncLagUnknown)))
    let start = writer.count
    writer.append(UInt32(0))  // checksum, patched below
    writer.append(UInt32(0))  // payload length, patched below
    writer.append(sequence)
    writer.append(UInt32(type) | lag << 8)
    payload(&writer)
    let end = writer.count
    precondition(end >= start + frameHeaderBytes, "a payload closure may only append bytes")
    let payloadLength = end - start - frameHeaderBytes
    precondition(
      payloadLength <= recordBytesMax,
      "record of \(payloadLength) bytes exceeds recordBytesMax (\(recordBytesMax)); split it")
    writer.patchUInt32(UInt32(payloadLength), at: start + 4)
    let checksum = writer.bytes.withUnsafeBytes { bytes in
      var crc = seed
      crc.update(UnsafeRawBufferPointer(rebasing: bytes[(start + 4)..<end]))
      return crc.value
    }
    writer.patchUInt32(checksum, at: start)
    assert(
      verifies(writer, at: start, seed: seed, sequence: sequence),
      "frame \(sequence) does not verify right after encoding")
    return start
  }

  /// Whether the frame just encoded at `offset` decodes as valid with `sequence`: the debug-build
  /// check that pairs the encoder with the decoder.
  private static func verifies(
    _ writer: ByteWriter, at offset: Int, seed: CRC32C, sequence: UInt64
  ) -> Bool {
    let decoded = writer.bytes.withUnsafeBytes {
      decode($0, at: offset, seed: seed, expectedSequence: sequence)
    }
    guard case .valid(let header) = decoded else { return false }
    return header.sequence == sequence && offset + header.frameBytes == writer.count
  }

  /// Decodes and verifies the frame at `offset` in `buffer`.
  ///
  /// Total on any bytes. Checks, in order: the header is complete; type, reserved bytes and
  /// length are well formed; the whole frame is present; the checksum matches under `seed`;
  /// and, when `expectedSequence` is given, the sequence is that one.
  public static func decode(
    _ buffer: UnsafeRawBufferPointer, at offset: Int, seed: CRC32C, expectedSequence: UInt64?
  ) -> Decoded {
    precondition(offset >= 0, "negative frame offset \(offset)")
    guard buffer.count >= offset && buffer.count - offset >= frameHeaderBytes else {
      return .incomplete(bytesNeeded: frameHeaderBytes)
    }
    let fields = HeaderFields(buffer, at: offset)
    if let defect = fields.shapeDefect { return .invalid(defect) }
    let frameBytes = frameHeaderBytes + Int(fields.payloadLength)
    guard buffer.count - offset >= frameBytes else {
      return .incomplete(bytesNeeded: frameBytes)
    }
    var crc = seed
    crc.update(UnsafeRawBufferPointer(rebasing: buffer[(offset + 4)..<(offset + frameBytes)]))
    guard crc.value == fields.checksum else {
      return .invalid(.checksumMismatch(stored: fields.checksum, computed: crc.value))
    }
    if let expectedSequence, fields.sequence != expectedSequence {
      return .invalid(.unexpectedSequence(expected: expectedSequence, found: fields.sequence))
    }
    return .valid(
      Header(
        checksum: fields.checksum, payloadLength: Int(fields.payloadLength),
        sequence: fields.sequence, type: fields.type, durableSequence: fields.durableSequence))
  }

  /// The raw header fields at an offset, before any verification.
  struct HeaderFields {
    var checksum: UInt32
    var payloadLength: UInt32
    var sequence: UInt64
    var type: UInt8
    var syncLag: UInt32

    /// Reads the 20 header bytes at `offset`; the caller has checked they are present.
    @inline(__always)
    init(_ buffer: UnsafeRawBufferPointer, at offset: Int) {
      checksum = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
      payloadLength = UInt32(
        littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
      sequence = UInt64(
        littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
      let last = UInt32(
        littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 16, as: UInt32.self))
      type = UInt8(truncatingIfNeeded: last)
      syncLag = last >> 8
    }

    /// The sequence the writer knew durable when writing the frame; 0 when unknown.
    var durableSequence: UInt64 {
      syncLag == syncLagUnknown || UInt64(syncLag) > sequence ? 0 : sequence - UInt64(syncLag)
    }

    /// The first defect that needs no checksum to see, if any.
    @inline(__always)
    var shapeDefect: Defect? {
      if type == 0 { return .typeZero }
      if syncLag == 0 || UInt64(syncLag) > sequence { return .syncLagInvalid(syncLag) }
      if payloadLength > UInt32(recordBytesMax) { return .payloadTooLong(payloadLength) }
      return nil
    }
  }
}
