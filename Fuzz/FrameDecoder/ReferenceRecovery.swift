// The recovery rules of FORMAT.md, written as plainly as possible: whole files in arrays, one
// frame at a time, no chunk window, no prefilter. Slow and obviously right (or at least wrong in
// different ways from Recovery.swift); the frame-decoder target runs both on every input and
// any difference in the records, the tail cut, the salvage or the error is a finding.

import CouponLog

/// A record as recovery hands it to its visitor.
struct SeenRecord: Equatable, CustomStringConvertible {
  var sequence: UInt64
  var type: UInt8
  var payload: [UInt8]
  var path: String
  var offset: Int64

  var description: String { "#\(sequence)/t\(type)/\(payload.count)B@\(path):\(offset)" }
}

/// What recovery should do with a directory.
struct ReferenceOutcome {
  var records: [SeenRecord] = []
  /// Strict and read-only recovery: the corruption thrown (path, offset), after `records`.
  var corruption: (path: String, offset: Int64)?
  var recordsTotal = 0
  var lastSequence: UInt64 = 0
  var tornTail: TailCut?
  var salvaged: (path: String, offset: Int64, bytesDropped: Int64, segmentsDropped: Int)?
  /// The directory's files after recovery (for read-only recovery: unchanged).
  var files: [String: [UInt8]] = [:]
}

enum ReferenceRecovery {
  /// The first sequence a segment name stands for, or `nil` if it is not exactly
  /// `log-<20 decimal digits>.seg` of a value that fits in 64 bits.
  static func firstSequence(ofName name: String) -> UInt64? {
    let utf8 = Array(name.utf8)
    guard utf8.count == 28, utf8[0..<4].elementsEqual("log-".utf8),
      utf8[24...].elementsEqual(".seg".utf8),
      utf8[4..<24].allSatisfy({ (0x30...0x39).contains($0) })
    else { return nil }
    return UInt64(String(decoding: utf8[4..<24], as: UTF8.self))
  }

  static func field<T: FixedWidthInteger>(_ bytes: [UInt8], _ offset: Int, _: T.Type) -> T {
    var value: T = 0
    for index in 0..<MemoryLayout<T>.size { value |= T(bytes[offset + index]) << (8 * index) }
    return value
  }

  static func run(
    files input: [String: [UInt8]], directory: String, mode: RecoveryMode,
    afterSequence: UInt64
  ) -> ReferenceOutcome {
    var outcome = ReferenceOutcome()
    outcome.files = input
    let segments = input.compactMap { name, bytes -> (UInt64, String, [UInt8])? in
      firstSequence(ofName: name).map { ($0, name, bytes) }
    }.sorted { $0.0 < $1.0 }
    var logEnd: UInt64?

    /// Corruption at `offset` of segment `index`: thrown, or salvaged (later segments removed,
    /// this one truncated or removed). Returns the log end to continue with.
    func corrupt(_ index: Int, _ offset: Int, lastSequence: UInt64) -> UInt64? {
      let (_, name, bytes) = segments[index]
      let path = directory + "/" + name
      guard mode == .salvage else {
        outcome.corruption = (path, Int64(offset))
        return nil
      }
      var dropped: Int64 = 0
      var removed = 0
      for later in segments[(index + 1)...] {
        outcome.files[later.1] = nil
        dropped += Int64(later.2.count)
        removed += 1
      }
      if offset == 0 {
        outcome.files[name] = nil
        dropped += Int64(bytes.count)
        removed += 1
      } else {
        outcome.files[name] = Array(bytes.prefix(offset))
        dropped += Int64(bytes.count - offset)
      }
      outcome.salvaged = (path, Int64(offset), dropped, removed)
      return lastSequence
    }

    segmentLoop: for (index, (nameSequence, name, bytes)) in segments.enumerated() {
      let path = directory + "/" + name
      let isLast = index == segments.count - 1
      // 1. The header.
      var torn = false
      var headerBad = false
      if bytes.count < 32 || !bytes[0..<8].elementsEqual("CPNLOG\r\n".utf8)
        || field(bytes, 28, UInt32.self) != CRC32C.checksum(Array(bytes[0..<28]))
      {
        torn = true
      } else if field(bytes, 8, UInt32.self) != 1 || field(bytes, 20, UInt64.self) == 0 {
        headerBad = true
      }
      if torn || headerBad {
        if torn && isLast && bytes.count <= 32 {
          outcome.tornTail = TailCut(
            path: path, offset: 0, bytesCut: Int64(bytes.count), segmentRemoved: true)
          if mode != .readOnly { outcome.files[name] = nil }
          continue
        }
        logEnd = corrupt(index, 0, lastSequence: logEnd ?? 0)
        break segmentLoop
      }
      let salt = field(bytes, 12, UInt64.self)
      let first = field(bytes, 20, UInt64.self)
      if first != nameSequence {
        logEnd = corrupt(index, 0, lastSequence: logEnd ?? 0)
        break
      }
      if let end = logEnd {
        if first <= end || (first != end + 1 && first - 1 > afterSequence) {
          logEnd = corrupt(index, 0, lastSequence: end)
          break
        }
      } else if first - 1 > afterSequence {
        logEnd = corrupt(index, 0, lastSequence: 0)
        break
      }

      // 2. The frames.
      var expected = first
      var position = 32
      var bad = false
      while position < bytes.count {
        guard let frame = validFrame(bytes, at: position, salt: salt),
          frame.sequence == expected
        else {
          bad = true
          break
        }
        if frame.sequence > afterSequence {
          outcome.records.append(
            SeenRecord(
              sequence: frame.sequence, type: frame.type,
              payload: Array(bytes[(position + 20)..<(position + 20 + frame.length)]),
              path: path, offset: Int64(position)))
        }
        outcome.recordsTotal += 1
        expected &+= 1
        position += 20 + frame.length
      }
      let lastGood = expected &- 1

      // 3. The first invalid frame.
      if bad {
        if !isLast {
          logEnd = corrupt(index, position, lastSequence: lastGood)
          break
        }
        // FORMAT.md, rule 3: candidates are whole, well-formed frames whose sequence is above
        // the last good one by at most one per 20 bytes past the invalid frame (and, for the
        // proof search, whose durable sequence is above it); they are verified in order until
        // one verifies or their bytes exceed the rest of the file plus one largest frame.
        enum Search { case none, found(Int), tooMany }
        func search(from start: Int, durableAbove: UInt64?) -> Search {
          var probe = start
          var budget = bytes.count - position + 20 + (1 << 20)
          while probe + 20 <= bytes.count {
            let length = Int(field(bytes, probe + 4, UInt32.self))
            let sequence = field(bytes, probe + 8, UInt64.self)
            let lag = UInt64(field(bytes, probe + 16, UInt32.self) >> 8)
            let durable = lag == 0xFF_FFFF || lag > sequence ? 0 : sequence - lag
            let sequenceMax = lastGood &+ 1 &+ UInt64((probe - position) / 20)
            if bytes[probe + 16] != 0, lag != 0, lag <= sequence, length <= 1 << 20,
              sequence > lastGood, sequence <= sequenceMax,
              durableAbove.map({ durable > $0 }) ?? true,
              probe + 20 + length <= bytes.count
            {
              budget -= 20 + length
              if budget < 0 { return .tooMany }
              if validFrame(bytes, at: probe, salt: salt) != nil { return .found(probe) }
            }
            probe += 1
          }
          return .none
        }
        var laterValid: Bool
        switch search(from: position, durableAbove: nil) {
        case .none: laterValid = false
        case .tooMany: laterValid = true
        case .found(let offset):
          // A zeroed hole before it is a dropped unsynced append, unless a frame written once
          // the hole was durable follows.
          if bytes[position..<offset].allSatisfy({ $0 == 0 }) {
            if case .none = search(from: offset, durableAbove: lastGood) {
              laterValid = false
            } else {
              laterValid = true
            }
          } else {
            laterValid = true
          }
        }
        if laterValid {
          logEnd = corrupt(index, position, lastSequence: lastGood)
          break
        }
        outcome.tornTail = TailCut(
          path: path, offset: Int64(position), bytesCut: Int64(bytes.count - position))
        if mode != .readOnly { outcome.files[name] = Array(bytes.prefix(position)) }
      }
      logEnd = lastGood
    }
    outcome.lastSequence = max(logEnd ?? 0, afterSequence)
    return outcome
  }

  /// The frame at `offset` if it is whole, well formed and verifies under `salt` (its sequence
  /// is not checked).
  static func validFrame(_ bytes: [UInt8], at offset: Int, salt: UInt64)
    -> (sequence: UInt64, type: UInt8, length: Int, durableSequence: UInt64)?
  {
    guard bytes.count - offset >= 20 else { return nil }
    let length = Int(field(bytes, offset + 4, UInt32.self))
    let sequence = field(bytes, offset + 8, UInt64.self)
    let type = bytes[offset + 16]
    let lag = field(bytes, offset + 16, UInt32.self) >> 8
    guard type != 0, lag != 0, UInt64(lag) <= sequence, length <= 1 << 20,
      bytes.count - offset >= 20 + length
    else { return nil }
    var crc = CRC32C()
    crc.update(littleEndian: salt)
    crc.update(Array(bytes[(offset + 4)..<(offset + 20 + length)]))
    guard crc.value == field(bytes, offset, UInt32.self) else { return nil }
    let durable = lag == 0xFF_FFFF ? 0 : sequence - UInt64(lag)
    return (sequence, type, length, durable)
  }
}
