// Events: the payloads of log records.
//
// Every state change is one event, and an event records the *decided outcome* (the code that was
// issued, the pool coupon that was drawn, the time used), so replay is deterministic and never
// consults a clock or a random number generator. The frame type byte is the event type; the
// payload layout of each type is listed in FORMAT.md ("Events"). Integers are LEB128 varints
// (times zig-zag encoded, in milliseconds since 1970), strings are a varint byte count followed by
// UTF-8. Campaigns and coupons are named by their dense index (creation order), which replay
// reproduces exactly.

import CouponLog

/// The event type, stored as the frame's type byte. Never renumber: these are on disk.
enum EventType: UInt8, CaseIterable, Sendable {
  case campaignCreated = 1
  case claimed = 2
  case codesAdded = 3
  case poolClaimed = 4
  case locked = 5
  case unlocked = 6
  case lockExpired = 7
  case redeemed = 8
  case rolledBack = 9
  case requestRecorded = 10
}

/// A request id and a fingerprint of the request it named, recorded with the request's event so
/// that a retry is recognised after a restart, and a different request reusing the id is refused.
struct RequestTag: Hashable, Sendable {
  var id: String
  var fingerprint: UInt64
}

/// A campaign as recorded in its creation event: the spec with every default resolved.
struct CampaignRecord: Hashable, Sendable {
  var id: String
  var name: String
  var stock: Int
  var startsAt: Int64
  var endsAt: Int64?
  var perUserLimit: Int
  var redemptionsPerCoupon: Int
  var codes: CodeSourceRecord
  var lockTimeoutMillis: Int64
  var expiresAt: Int64?
  var createdAt: Int64
}

/// How a campaign's codes are made, as recorded.
enum CodeSourceRecord: Hashable, Sendable {
  case generated(CodePattern)
  case pool
  case pregenerated(CodePattern, count: Int)
}

/// A decoded event. The writer's hot path encodes claims directly (``EventCoder``); this enum is
/// what replay, `dump`, the fuzzers and the tests see.
enum Event: Hashable, Sendable {
  case campaignCreated(CampaignRecord, request: RequestTag?)
  case claimed(campaign: UInt32, user: String?, code: String, time: Int64, request: RequestTag?)
  /// One chunk of an upload. Chunks of one upload share `upload` (the sequence number of its first
  /// chunk); only the chunk with `final` set makes the upload visible, so a crash in the middle
  /// of a large upload leaves nothing half-applied.
  case codesAdded(
    campaign: UInt32, upload: UInt64, final: Bool, codes: [String], time: Int64,
    request: RequestTag?)
  case poolClaimed(
    campaign: UInt32, coupon: UInt32, user: String?, time: Int64, request: RequestTag?)
  case locked(coupon: UInt32, time: Int64, expiresAt: Int64, request: RequestTag?)
  case unlocked(coupon: UInt32, time: Int64, request: RequestTag?)
  case lockExpired(coupon: UInt32, time: Int64)
  case redeemed(coupon: UInt32, time: Int64, request: RequestTag?)
  case rolledBack(coupon: UInt32, time: Int64, request: RequestTag?)
  /// A rejection answered to a request that carried an id, so a retry gets the same answer.
  case requestRecorded(RequestTag, outcome: UInt8, time: Int64)

  var type: EventType {
    switch self {
    case .campaignCreated: .campaignCreated
    case .claimed: .claimed
    case .codesAdded: .codesAdded
    case .poolClaimed: .poolClaimed
    case .locked: .locked
    case .unlocked: .unlocked
    case .lockExpired: .lockExpired
    case .redeemed: .redeemed
    case .rolledBack: .rolledBack
    case .requestRecorded: .requestRecorded
    }
  }
}

/// Why an event payload could not be decoded.
struct EventDecodingError: Error, Sendable, CustomStringConvertible {
  var type: UInt8
  var reason: String
  var description: String { "event type \(type): \(reason)" }
}

/// Encoding and decoding of event payloads.
enum EventCoder {
  /// Largest event payload; uploads are chunked below it.
  static let payloadBytesMax = 512 * 1024

  // MARK: Encoding

  static func encode(_ event: Event, into writer: inout ByteWriter) {
    switch event {
    case .campaignCreated(let record, let request):
      encodeCampaign(record, into: &writer)
      encode(request, into: &writer)
    case .claimed(let campaign, let user, let code, let time, let request):
      encodeClaimed(
        campaign: campaign, user: user, code: Array(code.utf8), time: time, request: request,
        into: &writer)
    case .codesAdded(let campaign, let upload, let final, let codes, let time, let request):
      writer.appendVarint(UInt64(campaign))
      writer.appendVarint(upload)
      writer.append(final ? 1 : 0 as UInt8)
      writer.appendVarint(zigzag(time))
      writer.appendVarint(UInt64(codes.count))
      for code in codes { writer.appendString(code) }
      encode(request, into: &writer)
    case .poolClaimed(let campaign, let coupon, let user, let time, let request):
      writer.appendVarint(UInt64(campaign))
      writer.appendVarint(UInt64(coupon))
      encodeUser(user, into: &writer)
      writer.appendVarint(zigzag(time))
      encode(request, into: &writer)
    case .locked(let coupon, let time, let expiresAt, let request):
      writer.appendVarint(UInt64(coupon))
      writer.appendVarint(zigzag(time))
      writer.appendVarint(zigzag(expiresAt))
      encode(request, into: &writer)
    case .unlocked(let coupon, let time, let request),
      .redeemed(let coupon, let time, let request),
      .rolledBack(let coupon, let time, let request):
      writer.appendVarint(UInt64(coupon))
      writer.appendVarint(zigzag(time))
      encode(request, into: &writer)
    case .lockExpired(let coupon, let time):
      writer.appendVarint(UInt64(coupon))
      writer.appendVarint(zigzag(time))
    case .requestRecorded(let tag, let outcome, let time):
      encode(tag, into: &writer)
      writer.append(outcome)
      writer.appendVarint(zigzag(time))
    }
  }

  /// The hot path: a generated-code claim, encoded without building an ``Event``.
  static func encodeClaimed(
    campaign: UInt32, user: String?, code: some Collection<UInt8>, time: Int64,
    request: RequestTag?, into writer: inout ByteWriter
  ) {
    writer.appendVarint(UInt64(campaign))
    encodeUser(user, into: &writer)
    writer.appendVarint(UInt64(code.count))
    writer.appendBytes(code)
    writer.appendVarint(zigzag(time))
    encode(request, into: &writer)
  }

  /// A user is a string; the empty string (never a valid user id) stands for anonymous.
  static func encodeUser(_ user: String?, into writer: inout ByteWriter) {
    writer.appendString(user ?? "")
  }

  static func encode(_ request: RequestTag?, into writer: inout ByteWriter) {
    guard let request else {
      writer.append(0 as UInt8)
      return
    }
    writer.append(1 as UInt8)
    encode(request, into: &writer)
  }

  static func encode(_ tag: RequestTag, into writer: inout ByteWriter) {
    writer.appendString(tag.id)
    writer.append(tag.fingerprint)
  }

  static func encodeCampaign(_ record: CampaignRecord, into writer: inout ByteWriter) {
    writer.appendString(record.id)
    writer.appendString(record.name)
    writer.appendVarint(UInt64(record.stock))
    writer.appendVarint(zigzag(record.startsAt))
    encodeOptionalTime(record.endsAt, into: &writer)
    writer.appendVarint(UInt64(record.perUserLimit))
    writer.appendVarint(UInt64(record.redemptionsPerCoupon))
    switch record.codes {
    case .generated(let pattern):
      writer.append(0 as UInt8)
      encodePattern(pattern, into: &writer)
    case .pool:
      writer.append(1 as UInt8)
    case .pregenerated(let pattern, let count):
      writer.append(2 as UInt8)
      encodePattern(pattern, into: &writer)
      writer.appendVarint(UInt64(count))
    }
    writer.appendVarint(zigzag(record.lockTimeoutMillis))
    encodeOptionalTime(record.expiresAt, into: &writer)
    writer.appendVarint(zigzag(record.createdAt))
  }

  static func encodePattern(_ pattern: CodePattern, into writer: inout ByteWriter) {
    writer.appendVarint(UInt64(pattern.alphabet.count))
    for symbol in pattern.alphabet { writer.appendString(String(symbol)) }
    writer.appendVarint(UInt64(pattern.length))
    writer.appendString(pattern.prefix)
    writer.appendVarint(UInt64(pattern.groupSize ?? 0))
    writer.appendString(String(pattern.separator))
  }

  static func encodeOptionalTime(_ time: Int64?, into writer: inout ByteWriter) {
    if let time {
      writer.append(1 as UInt8)
      writer.appendVarint(zigzag(time))
    } else {
      writer.append(0 as UInt8)
    }
  }

  // MARK: Decoding

  /// Decodes a payload of frame type `type`. Total: any bytes give an event or an error.
  static func decode(type: UInt8, payload: UnsafeRawBufferPointer) throws(EventDecodingError)
    -> Event
  {
    guard let eventType = EventType(rawValue: type) else {
      throw EventDecodingError(type: type, reason: "unknown event type")
    }
    var reader = ByteReader(payload)
    do {
      let event = try decode(eventType, &reader)
      guard reader.isAtEnd else {
        throw EventDecodingError(type: type, reason: "trailing bytes after the event")
      }
      return event
    } catch let error as EventDecodingError {
      throw error
    } catch {
      throw EventDecodingError(type: type, reason: "\(error)")
    }
  }

  private static func decode(_ type: EventType, _ reader: inout ByteReader) throws -> Event {
    switch type {
    case .campaignCreated:
      let record = try decodeCampaign(&reader)
      return .campaignCreated(record, request: try decodeRequest(&reader))
    case .claimed:
      let campaign = try readIndex(&reader)
      let user = try decodeUser(&reader)
      let code = try reader.readString()
      let time = try readTime(&reader)
      return .claimed(
        campaign: campaign, user: user, code: code, time: time,
        request: try decodeRequest(&reader))
    case .codesAdded:
      let campaign = try readIndex(&reader)
      let upload = try reader.readVarint()
      let finalByte = try reader.readUInt8()
      guard finalByte <= 1 else { throw malformed(type, "final flag \(finalByte)") }
      let time = try readTime(&reader)
      let count = try reader.readVarint()
      guard count <= UInt64(payloadBytesMax) else { throw malformed(type, "code count \(count)") }
      var codes: [String] = []
      codes.reserveCapacity(Int(count))
      for _ in 0..<count { codes.append(try reader.readString()) }
      return .codesAdded(
        campaign: campaign, upload: upload, final: finalByte == 1, codes: codes, time: time,
        request: try decodeRequest(&reader))
    case .poolClaimed:
      let campaign = try readIndex(&reader)
      let coupon = try readIndex(&reader)
      let user = try decodeUser(&reader)
      let time = try readTime(&reader)
      return .poolClaimed(
        campaign: campaign, coupon: coupon, user: user, time: time,
        request: try decodeRequest(&reader))
    case .locked:
      let coupon = try readIndex(&reader)
      let time = try readTime(&reader)
      let expiresAt = try readTime(&reader)
      return .locked(
        coupon: coupon, time: time, expiresAt: expiresAt, request: try decodeRequest(&reader))
    case .unlocked, .redeemed, .rolledBack:
      let coupon = try readIndex(&reader)
      let time = try readTime(&reader)
      let request = try decodeRequest(&reader)
      switch type {
      case .unlocked: return .unlocked(coupon: coupon, time: time, request: request)
      case .redeemed: return .redeemed(coupon: coupon, time: time, request: request)
      default: return .rolledBack(coupon: coupon, time: time, request: request)
      }
    case .lockExpired:
      let coupon = try readIndex(&reader)
      return .lockExpired(coupon: coupon, time: try readTime(&reader))
    case .requestRecorded:
      let tag = try decodeTag(&reader)
      let outcome = try reader.readUInt8()
      return .requestRecorded(tag, outcome: outcome, time: try readTime(&reader))
    }
  }

  static func decodeCampaign(_ reader: inout ByteReader) throws -> CampaignRecord {
    let type = EventType.campaignCreated
    let id = try reader.readString()
    let name = try reader.readString()
    let stock = try readCount(&reader, type, "stock")
    let startsAt = try readTime(&reader)
    let endsAt = try decodeOptionalTime(&reader)
    let perUserLimit = try readCount(&reader, type, "perUserLimit")
    let redemptions = try readCount(&reader, type, "redemptionsPerCoupon")
    let codes: CodeSourceRecord
    switch try reader.readUInt8() {
    case 0: codes = .generated(try decodePattern(&reader))
    case 1: codes = .pool
    case 2:
      let pattern = try decodePattern(&reader)
      codes = .pregenerated(pattern, count: try readCount(&reader, type, "count"))
    case let kind: throw malformed(type, "code source \(kind)")
    }
    let lockTimeout = try readTime(&reader)
    let expiresAt = try decodeOptionalTime(&reader)
    let createdAt = try readTime(&reader)
    // The ranges `createCampaign` enforces: a record outside them was never written by the
    // engine, and replaying it would build a campaign no rule was checked against.
    try checkCampaign(
      id: id, name: name, stock: stock, startsAt: startsAt, endsAt: endsAt,
      perUserLimit: perUserLimit, redemptions: redemptions, lockTimeout: lockTimeout)
    return CampaignRecord(
      id: id, name: name, stock: stock, startsAt: startsAt, endsAt: endsAt,
      perUserLimit: perUserLimit, redemptionsPerCoupon: redemptions, codes: codes,
      lockTimeoutMillis: lockTimeout, expiresAt: expiresAt, createdAt: createdAt)
  }

  private static func checkCampaign(
    id: String, name: String, stock: Int, startsAt: Int64, endsAt: Int64?, perUserLimit: Int,
    redemptions: Int, lockTimeout: Int64
  ) throws(EventDecodingError) {
    let type = EventType.campaignCreated
    do {
      try Validate.text(id, field: "id", bytesMax: Validate.idBytesMax)
      try Validate.text(name, field: "name", bytesMax: Validate.nameBytesMax, allowEmpty: true)
    } catch {
      throw malformed(type, error.message)
    }
    guard stock <= Validate.stockMax else { throw malformed(type, "stock \(stock)") }
    guard (1...Validate.perUserLimitMax).contains(perUserLimit) else {
      throw malformed(type, "perUserLimit \(perUserLimit)")
    }
    guard (1...Validate.redemptionsMax).contains(redemptions) else {
      throw malformed(type, "redemptionsPerCoupon \(redemptions)")
    }
    guard lockTimeout > 0 else { throw malformed(type, "lockTimeout \(lockTimeout)") }
    if let endsAt, endsAt < startsAt { throw malformed(type, "endsAt before startsAt") }
  }

  static func decodePattern(_ reader: inout ByteReader) throws -> CodePattern {
    let type = EventType.campaignCreated
    let symbolCount = try reader.readVarint()
    guard symbolCount <= UInt64(CodePattern.alphabetMax) else {
      throw malformed(type, "alphabet of \(symbolCount) symbols")
    }
    var alphabet: [Character] = []
    for _ in 0..<symbolCount { alphabet.append(try readCharacter(&reader)) }
    let length = try readCount(&reader, type, "length")
    let prefix = try reader.readString()
    let groupSize = try readCount(&reader, type, "groupSize")
    let separator = try readCharacter(&reader)
    let pattern = CodePattern(
      alphabet: alphabet, length: length, prefix: prefix,
      groupSize: groupSize == 0 ? nil : groupSize, separator: separator)
    do {
      try pattern.validate(field: "pattern")
    } catch {
      throw malformed(type, "invalid code pattern: \(error.message)")
    }
    return pattern
  }

  static func decodeUser(_ reader: inout ByteReader) throws -> String? {
    let user = try reader.readString()
    return user.isEmpty ? nil : user
  }

  static func decodeRequest(_ reader: inout ByteReader) throws -> RequestTag? {
    switch try reader.readUInt8() {
    case 0: return nil
    case 1: return try decodeTag(&reader)
    case let flag: throw EventDecodingError(type: 0, reason: "request flag \(flag)")
    }
  }

  static func decodeTag(_ reader: inout ByteReader) throws -> RequestTag {
    let id = try reader.readString()
    return RequestTag(id: id, fingerprint: try reader.readUInt64())
  }

  static func decodeOptionalTime(_ reader: inout ByteReader) throws -> Int64? {
    switch try reader.readUInt8() {
    case 0: return nil
    case 1: return try readTime(&reader)
    case let flag: throw EventDecodingError(type: 0, reason: "optional time flag \(flag)")
    }
  }

  private static func readCharacter(_ reader: inout ByteReader) throws -> Character {
    let text = try reader.readString()
    guard text.count == 1, let character = text.first else {
      throw EventDecodingError(type: 1, reason: "expected one character, got \"\(text)\"")
    }
    return character
  }

  private static func readIndex(_ reader: inout ByteReader) throws -> UInt32 {
    let value = try reader.readVarint()
    guard value < UInt64(UInt32.max) else {
      throw EventDecodingError(type: 0, reason: "index \(value) out of range")
    }
    return UInt32(value)
  }

  private static func readCount(_ reader: inout ByteReader, _ type: EventType, _ field: String)
    throws -> Int
  {
    let value = try reader.readVarint()
    guard value <= UInt64(Int32.max) * 16 else { throw malformed(type, "\(field) \(value)") }
    return Int(value)
  }

  static func readTime(_ reader: inout ByteReader) throws -> Int64 {
    unzigzag(try reader.readVarint())
  }

  private static func malformed(_ type: EventType, _ reason: String) -> EventDecodingError {
    EventDecodingError(type: type.rawValue, reason: reason)
  }

  static func zigzag(_ value: Int64) -> UInt64 {
    UInt64(bitPattern: (value << 1) ^ (value >> 63))
  }

  static func unzigzag(_ value: UInt64) -> Int64 {
    Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1)
  }
}
