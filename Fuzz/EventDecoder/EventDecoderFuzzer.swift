// event-decoder: arbitrary bytes as event payloads → EventCoder and StoreState.replay.
//
// The first byte picks one of three modes:
// - one payload: a type byte and the rest as its payload, decoded (on an exactly-sized heap copy,
//   so AddressSanitizer sees any over-read) and, on top of a small known state, replayed;
// - raw records: a sequence of (type, length, payload) records replayed in order;
// - built events: a sequence of events assembled field by field from small domains (a handful of
//   ids, users, codes and indexes, so that duplicates, unknown indexes and limits are hit),
//   encoded, and replayed.
// Checks: decoding is total (an event or an `EventDecodingError`); a decoded event encodes to
// bytes that decode to the same event and encode again to the same bytes; replay never traps (it
// throws `ReplayError`); the claim fast path (`replay(type:payload:)`, which parses claims without
// building an `Event`) and the general path (decode, then `replay(_:)`) agree on every record,
// both on whether it is accepted and on the state it leaves; and after every accepted record the
// state has no invariant violation (`invariantViolations()`, what `couponstore verify` checks).

import CouponLog
import Foundation

@testable import CouponStore

enum EventDecoderFuzzer {
  static func run(_ data: [UInt8]) throws {
    var input = FuzzInput(data)
    let mode = input.byte() % 3
    let window = input.int(in: 0...3)
    switch mode {
    case 0:
      let type = input.byte()
      let payload = input.rest()
      FuzzLog.line("event-decoder mode=payload window=\(window) type=\(type) bytes=\(payload)")
      try checkPayload(type: type, payload)
      var replay = DifferentialReplay(window: window)
      for record in baseRecords() {
        try fuzzCheck(try replay.apply(record), "replay refuses the sample record \(record)")
      }
      _ = try replay.apply(Record(type: type, payload: payload))
    case 1:
      var records: [Record] = []
      while !input.isExhausted, records.count < 64 {
        let type = input.byte()
        records.append(Record(type: type, payload: input.take(input.int(in: 0...1024))))
      }
      FuzzLog.line("event-decoder mode=records window=\(window) records=\(records)")
      var replay = DifferentialReplay(window: window)
      for record in records {
        try checkPayload(type: record.type, record.payload)
        guard try replay.apply(record) else { break }
      }
    default:
      let builder = EventBuilder()
      var events: [Event] = []
      while !input.isExhausted, events.count < 64 { events.append(builder.event(&input)) }
      FuzzLog.line("event-decoder mode=events window=\(window) events=\(events)")
      var replay = DifferentialReplay(window: window)
      for event in events {
        var writer = ByteWriter()
        EventCoder.encode(event, into: &writer)
        let record = Record(type: event.type.rawValue, payload: writer.bytes)
        try checkPayload(type: record.type, record.payload)
        guard try replay.apply(record) else { break }
      }
    }
  }

  /// One log record: a frame type and its payload.
  struct Record: CustomStringConvertible {
    var type: UInt8
    var payload: [UInt8]
    var description: String { "\(type):\(payload)" }
  }

  /// Decodes a payload from an exactly-sized heap copy; checks the round trip of what decodes.
  static func checkPayload(type: UInt8, _ payload: [UInt8]) throws {
    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: payload.count, alignment: 1)
    defer { copy.deallocate() }
    payload.withUnsafeBytes { copy.copyMemory(from: $0) }
    let event: Event
    do {
      event = try EventCoder.decode(type: type, payload: UnsafeRawBufferPointer(copy))
    } catch {
      return  // typed: EventDecodingError is the only way out
    }
    try fuzzCheck(event.type.rawValue == type, "type \(type) decoded as \(event.type)")
    var writer = ByteWriter()
    EventCoder.encode(event, into: &writer)
    let again: Event
    do {
      again = try writer.bytes.withUnsafeBytes { try EventCoder.decode(type: type, payload: $0) }
    } catch {
      throw FuzzFinding(message: "\(event) encodes to bytes that do not decode: \(error)")
    }
    try fuzzCheck(again == event, "round trip changed \(event) into \(again)")
    var writerAgain = ByteWriter()
    EventCoder.encode(again, into: &writerAgain)
    try fuzzCheck(writerAgain.bytes == writer.bytes, "encoding of \(event) is not stable")
    _ = EventJSON.line(sequence: 1, event: event)
  }

  /// A known-good beginning: a generated campaign, a pool campaign with codes, a claim, a request.
  static func baseRecords() -> [Record] {
    sampleEvents().map { event in
      var writer = ByteWriter()
      EventCoder.encode(event, into: &writer)
      return Record(type: event.type.rawValue, payload: writer.bytes)
    }
  }

  static func sampleEvents() -> [Event] {
    let pattern = CodePattern(alphabet: ["A", "B", "가"], length: 8, prefix: "P-", groupSize: 4)
    func campaign(_ id: String, _ codes: CodeSourceRecord, stock: Int) -> CampaignRecord {
      CampaignRecord(
        id: id, name: "n", stock: stock, startsAt: 0, endsAt: nil, perUserLimit: 2,
        redemptionsPerCoupon: 1, codes: codes, lockTimeoutMillis: 300_000, expiresAt: nil,
        createdAt: 1)
    }
    let tag = RequestTag(id: "r1", fingerprint: 7)
    return [
      .campaignCreated(campaign("gen", .generated(pattern), stock: 3), request: nil),
      .campaignCreated(campaign("pool", .pool, stock: 0), request: tag),
      .codesAdded(
        campaign: 1, upload: 3, final: false, codes: ["X1", "X2"], time: 2, request: nil),
      .codesAdded(campaign: 1, upload: 3, final: true, codes: ["X3"], time: 2, request: nil),
      .claimed(campaign: 0, user: "u", code: "P-ABAB-가가AA", time: 3, request: nil),
      .poolClaimed(campaign: 1, coupon: 2, user: "u", time: 4, request: nil),
      .requestRecorded(RequestTag(id: "r2", fingerprint: 9), outcome: 1, time: 5),
    ]
  }

  /// Seed inputs for the corpus: each sample event in "one payload" mode, and all of them in
  /// "raw records" mode.
  static func seeds() -> [[UInt8]] {
    var seeds: [[UInt8]] = []
    var all: [UInt8] = [1, 1]
    for record in baseRecords() {
      seeds.append([0, 1, record.type] + record.payload)
      all += [record.type] + lengthBytes(record.payload.count, upTo: 1024) + record.payload
    }
    seeds.append(all)
    return seeds
  }

  /// The bytes `FuzzInput.int(in: 0...max)` reads back as `value`.
  static func lengthBytes(_ value: Int, upTo max: Int) -> [UInt8] {
    max < 256 ? [UInt8(value)] : [UInt8(value & 0xFF), UInt8(value >> 8)]
  }
}

/// Replays records into two states by the two paths and compares them after every record.
struct DifferentialReplay {
  /// Fast path: `replay(type:payload:sequence:)`.
  var fast: StoreState
  /// General path: `EventCoder.decode`, then `replay(_:sequence:)`.
  var general: StoreState
  var sequence: UInt64 = 0

  init(window: Int) {
    fast = StoreState(requestWindow: window)
    general = StoreState(requestWindow: window)
  }

  /// Replays one record by both paths. Returns whether it was accepted; a record one path
  /// accepts and the other refuses, states that differ afterwards, or a broken invariant are
  /// findings.
  mutating func apply(_ record: EventDecoderFuzzer.Record) throws -> Bool {
    sequence += 1
    var fastError: (any Error)?
    do {
      try record.payload.withUnsafeBytes {
        try fast.replay(type: record.type, payload: $0, sequence: sequence)
      }
    } catch {
      fastError = error
    }
    var generalError: (any Error)?
    do {
      let event = try record.payload.withUnsafeBytes {
        try EventCoder.decode(type: record.type, payload: $0)
      }
      try general.replay(event, sequence: sequence)
    } catch {
      generalError = error
    }
    if let fastError {
      try fuzzCheck(
        fastError is ReplayError, "replay threw \(type(of: fastError)), not ReplayError")
    }
    try fuzzCheck(
      (fastError == nil) == (generalError == nil),
      "record \(record): fast path \(fastError.map { "\($0)" } ?? "accepts"), general path "
        + "\(generalError.map { "\($0)" } ?? "accepts")")
    guard fastError == nil else { return false }
    let problems = fast.invariantViolations()
    try fuzzCheck(problems.isEmpty, "replay of \(record) broke invariants: \(problems)")
    let (fastDigest, generalDigest) = (digest(fast), digest(general))
    try fuzzCheck(
      fastDigest == generalDigest,
      "after \(record) the paths disagree:\n\(fastDigest)\n---\n\(generalDigest)")
    return true
  }

  /// Everything replay can change, as text.
  func digest(_ state: StoreState) -> String {
    var lines: [String] = []
    for campaign in state.campaigns {
      lines.append(
        "campaign \(campaign.record) stock=\(campaign.stock) order=\(campaign.issueOrder) "
          + "available=\(campaign.available) counts=\(campaign.countsByState)")
    }
    for (id, coupon) in state.coupons.enumerated() {
      let owner = coupon.owner == CouponRecord.none ? "-" : state.users.string(of: coupon.owner)
      lines.append(
        "coupon \(id) \(state.codes.string(of: UInt32(id))) c=\(coupon.campaign) o=\(owner) "
          + "s=\(coupon.state) t=\(coupon.issuedAt) slot=\(coupon.poolSlot) "
          + "next=\(coupon.nextOfOwner)")
    }
    lines.append("users=\(state.users.count) heads=\(state.userHeads)")
    for key in state.requests.keys.sorted() {
      lines.append("request \(key) \(state.requests[key]!)")
    }
    for key in state.stagedUploads.keys.sorted() {
      lines.append("staged \(key) \(state.stagedUploads[key]!)")
    }
    lines.append("locks=\(state.lockExpiry.sorted { $0.key < $1.key })")
    lines.append("history=\(state.history.sorted { $0.key < $1.key })")
    return lines.joined(separator: "\n")
  }
}

/// Assembles events from small domains, so that replay meets the same ids, users, codes and
/// indexes again and again.
struct EventBuilder {
  static let ids = ["a", "b", "가", "a\u{301}", "á", ""]
  static let users = ["u", "v", "가", "\u{1100}\u{1161}", "👩‍👩‍👧"]
  static let codes = [
    "A", "B", "AB", "가", "P-ABAB-가가AA", "", "\u{7}", String(repeating: "Z", count: 65),
  ]
  static let symbols: [Character] = ["A", "B", "가", "-", "\u{301}", "👍🏽", " "]

  func event(_ input: inout FuzzInput) -> Event {
    let time = Int64(input.int(in: -2...5))
    switch input.byte() % 10 {
    case 0:
      return .campaignCreated(campaign(&input), request: tag(&input))
    case 1:
      return .claimed(
        campaign: index(&input), user: user(&input), code: input.pick(Self.codes), time: time,
        request: tag(&input))
    case 2:
      var codes: [String] = []
      for _ in 0..<input.int(in: 0...4) { codes.append(input.pick(Self.codes)) }
      return .codesAdded(
        campaign: index(&input), upload: UInt64(input.int(in: 0...2)), final: input.bool(),
        codes: codes, time: time, request: tag(&input))
    case 3:
      return .poolClaimed(
        campaign: index(&input), coupon: UInt32(input.int(in: 0...7)), user: user(&input),
        time: time, request: tag(&input))
    case 4:
      return .locked(
        coupon: UInt32(input.int(in: 0...7)), time: time, expiresAt: time + 1,
        request: tag(&input))
    case 5: return .unlocked(coupon: UInt32(input.int(in: 0...7)), time: time, request: nil)
    case 6: return .lockExpired(coupon: UInt32(input.int(in: 0...7)), time: time)
    case 7: return .redeemed(coupon: UInt32(input.int(in: 0...7)), time: time, request: nil)
    case 8: return .rolledBack(coupon: UInt32(input.int(in: 0...7)), time: time, request: nil)
    default:
      let outcome = input.pick([0, 1, 4, 7, 8, 99, 100, 255] as [UInt8])
      return .requestRecorded(
        tag(&input) ?? RequestTag(id: "r", fingerprint: 0), outcome: outcome, time: time)
    }
  }

  func index(_ input: inout FuzzInput) -> UInt32 { UInt32(input.int(in: 0...3)) }

  func user(_ input: inout FuzzInput) -> String? {
    input.bool() ? nil : input.pick(Self.users)
  }

  func tag(_ input: inout FuzzInput) -> RequestTag? {
    guard input.bool() else { return nil }
    return RequestTag(
      id: input.pick(["r1", "r2", "r3"]), fingerprint: UInt64(input.int(in: 0...2)))
  }

  func campaign(_ input: inout FuzzInput) -> CampaignRecord {
    let codes: CodeSourceRecord
    switch input.int(in: 0...2) {
    case 0: codes = .generated(pattern(&input))
    case 1: codes = .pool
    default: codes = .pregenerated(pattern(&input), count: input.int(in: 0...3))
    }
    let startsAt = Int64(input.int(in: -1...2))
    return CampaignRecord(
      id: input.pick(Self.ids), name: input.pick(Self.users), stock: input.int(in: 0...4),
      startsAt: startsAt, endsAt: input.bool() ? nil : startsAt + Int64(input.int(in: -1...3)),
      perUserLimit: input.int(in: 0...3), redemptionsPerCoupon: input.int(in: 0...2),
      codes: codes, lockTimeoutMillis: Int64(input.int(in: 0...1000)),
      expiresAt: input.bool() ? nil : Int64(input.int(in: 0...9)), createdAt: 1)
  }

  /// A pattern that decodes: 2–4 distinct symbols (not the separator), length 1–12.
  func pattern(_ input: inout FuzzInput) -> CodePattern {
    var alphabet: [Character] = []
    for _ in 0..<input.int(in: 2...4) {
      let symbol = input.pick(Self.symbols)
      if !alphabet.contains(symbol), symbol != "-" { alphabet.append(symbol) }
    }
    if alphabet.count < 2 { alphabet = ["A", "B"] }
    let length = input.int(in: 1...12)
    return CodePattern(
      alphabet: alphabet, length: length, prefix: input.pick(["", "P-", "가"]),
      groupSize: input.bool() ? nil : input.int(in: 1...length))
  }
}
