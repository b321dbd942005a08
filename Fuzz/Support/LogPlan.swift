// Fuzz bytes → a directory of log segment files (the frame-decoder target's input, and the
// copied-in directories of the api-sequence target's tamper operation).
//
// Random bytes almost never get past a CRC-32C, so most segments are *built*: the input chooses
// the header fields, each frame's type, length, payload, sequence and sync lag, and damage
// (a wrong sequence, a flipped bit, a truncated or extended tail, a repeated pattern, a torn
// header), and the builder computes the checksums. Some segments are *raw*: the input bytes are
// the file, for what no grammar foresees. The builder's encoders are written here from FORMAT.md,
// independently of Frame.swift and Segment.swift, so that an encoder bug there cannot hide a
// decoder bug.

import CouponLog

/// How a fuzz run calls ``recoverLog(fileSystem:directory:options:progress:visit:)``.
enum RecoveryMode: CaseIterable {
  case strict, readOnly, salvage

  var options: (salvage: Bool, readOnly: Bool) {
    switch self {
    case .strict: (false, false)
    case .readOnly: (false, true)
    case .salvage: (true, false)
    }
  }
}

/// A data directory to recover, decoded from fuzz input.
struct LogPlan {
  /// The directory the files go in.
  static let directory = "/log"
  /// Largest file a plan builds (a repeated pattern can make a short input a long file).
  static let fileBytesMax = 2 << 20

  var mode: RecoveryMode
  var afterSequence: UInt64
  /// File names and contents (names are unique: a later file of the same name replaces one).
  var files: [(name: String, bytes: [UInt8])] = []
  /// The salt each built segment was given (raw segments: the input's guess), for direct
  /// `Frame.decode` calls.
  var salts: [UInt64] = []
  /// An offset chosen by the input for direct decoding.
  var probeOffset: Int

  init(_ input: inout FuzzInput) {
    let flags = input.byte()
    mode = RecoveryMode.allCases[Int(flags & 0x3) % 3]
    afterSequence = UInt64(input.int(in: 0...6))
    probeOffset = input.int(in: 0...255)
    let segmentCount = input.int(in: 1...3)
    var nextSequence: UInt64 = 1
    for index in 0..<segmentCount {
      let kind = input.byte()
      let salt = input.uint64()
      let firstSequence: UInt64
      if index == 0 || kind & 0x10 != 0 {
        firstSequence = LogPlan.sequence(&input)
      } else {
        firstSequence = nextSequence
      }
      var name = LogPlan.segmentName(firstSequence)
      if kind & 0x20 != 0 {
        let chosen = LogPlan.name(&input)
        // A file name: not empty, no "/", not "." or "..".
        if !chosen.isEmpty, !chosen.contains("/"), chosen != ".", chosen != ".." { name = chosen }
      }
      let bytes: [UInt8]
      if kind & 0x7 == 0 {
        bytes = input.take(input.int(in: 0...4096))
      } else {
        var builder = SegmentBuilder(salt: salt, firstSequence: firstSequence)
        builder.build(&input)
        nextSequence = builder.nextSequence
        bytes = builder.bytes
      }
      files.removeAll { $0.name == name }
      files.append((name, bytes))
      salts.append(salt)
    }
  }

  /// One line naming every parameter (for `FUZZ_VERBOSE=1`).
  var summary: String {
    "mode=\(mode) after=\(afterSequence) probe=\(probeOffset) files="
      + files.map { "\($0.name):\($0.bytes.count)" }.joined(separator: ",")
  }

  /// A first sequence: small ones mostly, now and then one at the top of the range.
  static func sequence(_ input: inout FuzzInput) -> UInt64 {
    let choice = input.byte()
    switch choice {
    case 0xFF: return UInt64.max - UInt64(input.int(in: 0...3))
    case 0xFE: return input.uint64()
    default: return UInt64(choice % 10)
    }
  }

  /// `log-<20 digits>.seg` (FORMAT.md), written out here rather than taken from `SegmentFile`.
  static func segmentName(_ firstSequence: UInt64) -> String {
    let digits = String(firstSequence)
    return "log-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".seg"
  }

  /// A name that may or may not be a segment's.
  static func name(_ input: inout FuzzInput) -> String {
    switch input.int(in: 0...5) {
    case 0: return "LOCK"
    case 1: return "log-99999999999999999999.seg"  // 20 digits, beyond UInt64
    case 2: return "log-1.seg"
    case 3: return "log-0000000000000000000x.seg"
    case 4: return segmentName(UInt64(input.int(in: 0...12)))
    default: return String(decoding: input.take(input.int(in: 0...30)), as: UTF8.self)
    }
  }
}

/// Builds one segment file frame by frame, computing checksums unless told to damage them.
struct SegmentBuilder {
  let salt: UInt64
  let firstSequence: UInt64
  private(set) var bytes: [UInt8]
  /// The sequence the next undamaged frame gets.
  private(set) var nextSequence: UInt64

  init(salt: UInt64, firstSequence: UInt64) {
    self.salt = salt
    self.firstSequence = firstSequence
    self.bytes = SegmentBuilder.header(salt: salt, firstSequence: firstSequence)
    self.nextSequence = firstSequence
  }

  /// The 32-byte header: magic, version 1, salt, first sequence, CRC-32C of bytes 0 ..< 28.
  static func header(salt: UInt64, firstSequence: UInt64, version: UInt32 = 1) -> [UInt8] {
    var writer = ByteWriter()
    writer.appendBytes(Array("CPNLOG\r\n".utf8))
    writer.append(version)
    writer.append(salt)
    writer.append(firstSequence)
    writer.append(CRC32C.checksum(writer.bytes))
    return writer.bytes
  }

  /// One frame: CRC-32C of the salt then bytes 4 ..< 20 + n; `lag` is the 24-bit sync lag.
  static func frame(
    sequence: UInt64, type: UInt8, lag: UInt32, payload: [UInt8], salt: UInt64,
    declaredLength: UInt32? = nil
  ) -> [UInt8] {
    var writer = ByteWriter()
    writer.append(UInt32(0))
    writer.append(declaredLength ?? UInt32(payload.count))
    writer.append(sequence)
    writer.append(UInt32(type) | (lag & 0xFF_FFFF) << 8)
    writer.appendBytes(payload)
    var crc = CRC32C()
    crc.update(littleEndian: salt)
    writer.bytes.withUnsafeBytes { crc.update(UnsafeRawBufferPointer(rebasing: $0[4...])) }
    writer.patchUInt32(crc.value, at: 0)
    return writer.bytes
  }

  mutating func build(_ input: inout FuzzInput) {
    let headerVersion: UInt32 = input.byte() == 0xFF ? 2 : 1
    if headerVersion != 1 {
      bytes = SegmentBuilder.header(
        salt: salt, firstSequence: firstSequence, version: headerVersion)
    }
    let frameCount = input.int(in: 0...12)
    for _ in 0..<frameCount { appendFrame(&input) }
    damageTail(&input)
  }

  private mutating func appendFrame(_ input: inout FuzzInput) {
    let control = input.byte()
    let type = input.byte()
    let length = control & 0x80 != 0 ? input.int(in: 0...2048) : input.int(in: 0...31)
    var payload = input.take(length)
    payload += repeatElement(0, count: length - payload.count)
    var sequence = nextSequence
    switch control & 0x7 {
    case 1: sequence &+= 1
    case 2: sequence &-= 1
    case 3: sequence = input.uint64()
    default: break
    }
    let lag: UInt32
    switch (control >> 3) & 0x3 {
    case 0: lag = 1
    case 1: lag = UInt32(min(sequence &- firstSequence &+ 1, 0xFF_FFFF))
    case 2: lag = 0xFF_FFFF
    default: lag = UInt32(input.unsigned(byteCount: 3))
    }
    var declared: UInt32?
    if control & 0x40 != 0 {
      declared = UInt32(truncatingIfNeeded: input.unsigned(byteCount: 3))
    }
    var frame = SegmentBuilder.frame(
      sequence: sequence, type: type, lag: lag, payload: payload, salt: salt,
      declaredLength: declared)
    if control & 0x20 != 0 {
      let bit = input.int(in: 0...(frame.count * 8 - 1))
      frame[bit / 8] ^= 1 << UInt8(bit % 8)
    }
    bytes += frame
    if sequence == nextSequence { nextSequence &+= 1 }
  }

  private mutating func damageTail(_ input: inout FuzzInput) {
    let operation = input.byte()
    switch operation & 0x7 {
    case 2:
      bytes.removeLast(min(bytes.count, input.int(in: 1...64)))
    case 3:
      bytes += input.take(input.int(in: 1...64))
    case 4:
      let pattern = input.take(input.int(in: 1...24))
      let times = input.int(in: 1...(LogPlan.fileBytesMax / 8))
      if !pattern.isEmpty {
        let count = min(times, (LogPlan.fileBytesMax - bytes.count) / pattern.count)
        bytes.reserveCapacity(bytes.count + count * pattern.count)
        for _ in 0..<max(0, count) { bytes += pattern }
      }
    case 5:
      bytes += repeatElement(0, count: input.int(in: 1...4096))
    case 6:
      bytes.removeLast(min(bytes.count, input.int(in: 1...64)))
      bytes += input.take(input.int(in: 1...64))
    case 7:
      if input.bool() {
        let bit = input.int(in: 0...255)
        bytes[bit / 8] ^= 1 << UInt8(bit % 8)
      } else {
        bytes.removeLast(bytes.count - min(bytes.count, input.int(in: 0...31)))
      }
    default:
      break
    }
  }
}
