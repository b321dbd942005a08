// Replay: rebuilding the state from log records on open.
//
// Replay applies each event with the same `apply…` functions the writer uses, after checking
// that the event is consistent with the state so far. An inconsistent event (a campaign that does
// not exist, a code issued twice, stock exceeded) can only come from damage that slipped past the
// checksums or from a bug; it is reported as corruption at the record's file and offset, never
// trusted and never allowed to trap.

import CouponLog

/// Why a record could not be replayed.
struct ReplayError: Error, Sendable {
  var reason: String
}

extension StoreState {
  /// Applies one log record. Generated-code claims (the bulk of any log) are decoded straight
  /// from the payload bytes, without building an ``Event`` or any `String`.
  mutating func replay(type: UInt8, payload: UnsafeRawBufferPointer, sequence: UInt64) throws {
    defer { lastSequence = sequence }
    if type == EventType.claimed.rawValue {
      try replayClaimed(payload)
      return
    }
    let event: Event
    do {
      event = try EventCoder.decode(type: type, payload: payload)
    } catch {
      throw ReplayError(reason: error.description)
    }
    try replay(event, sequence: sequence)
  }

  /// Applies a `claimed` record. `tags` are the code's and the user's ``StringTable/tag(_:)`` if
  /// the caller computed them (``ReplayBatcher``); they must belong to this payload's strings.
  mutating func replayClaimed(
    _ payload: UnsafeRawBufferPointer, tags: (code: UInt32, user: UInt32)? = nil
  ) throws {
    var reader = ByteReader(payload)
    do {
      let campaign = try reader.readVarint()
      let userBytes = try reader.readBytes(Int(clamping: try reader.readVarint()))
      let codeBytes = try reader.readBytes(Int(clamping: try reader.readVarint()))
      let time = try EventCoder.readTime(&reader)
      let request = try EventCoder.decodeRequest(&reader)
      guard reader.isAtEnd else { throw ReplayError(reason: "trailing bytes after a claim") }
      guard campaign < UInt64(campaigns.count), !campaigns[Int(campaign)].isPool else {
        throw ReplayError(reason: "claim of unknown or pool campaign \(campaign)")
      }
      let index = UInt32(campaign)
      guard campaigns[Int(index)].issued < campaigns[Int(index)].stock else {
        throw ReplayError(
          reason: "claim beyond the stock of campaign \(campaigns[Int(index)].record.id)")
      }
      let codeTag = tags?.code ?? StringTable.tag(codeBytes)
      guard !codeBytes.isEmpty, codeBytes.count <= CodeRules.codeBytesMax,
        codes.find(codeBytes, tag: codeTag) == nil
      else {
        throw ReplayError(reason: "claim with an empty, oversized or duplicate code")
      }
      guard isValidUTF8(codeBytes), isValidUTF8(userBytes) else {
        throw ReplayError(reason: "claim with invalid UTF-8")
      }
      var user: UInt32?
      if !userBytes.isEmpty {
        let id = users.intern(userBytes, tag: tags?.user ?? StringTable.tag(userBytes))
        if Int(id) == userHeads.count { userHeads.append(CouponRecord.none) }
        guard held(by: id, in: index) < campaigns[Int(index)].perUserLimit else {
          throw ReplayError(reason: "claim beyond the per-user limit")
        }
        user = id
      }
      let coupon = applyClaimed(
        campaign: index, user: user, code: codeBytes, codeTag: codeTag, time: time)
      if let request { remember(request, .claimed(coupon)) }
    } catch let error as ReplayError {
      throw error
    } catch {
      throw ReplayError(reason: "malformed claim: \(error)")
    }
  }

  mutating func replay(_ event: Event, sequence: UInt64) throws {
    switch event {
    case .campaignCreated(let record, let request):
      guard campaignIndex[record.id] == nil else {
        throw ReplayError(reason: "campaign \(record.id) created twice")
      }
      let index = applyCampaignCreated(record)
      try replayPregenerated(campaign: index)
      if let request { remember(request, .campaign(index)) }
    case .claimed(let campaign, let user, let code, let time, let request):
      var writer = ByteWriter()
      EventCoder.encodeClaimed(
        campaign: campaign, user: user, code: Array(code.utf8), time: time, request: request,
        into: &writer)
      try writer.bytes.withUnsafeBytes { try replayClaimed($0) }
    case .codesAdded(let campaign, let upload, let final, let newCodes, _, let request):
      try replayCodesAdded(
        campaign: campaign, upload: upload, final: final, codes: newCodes, request: request)
    case .poolClaimed(let campaign, let coupon, let user, let time, let request):
      guard coupon < UInt32(coupons.count), coupons[Int(coupon)].campaign == campaign,
        coupons[Int(coupon)].state == .available, !coupons[Int(coupon)].isStaged
      else {
        throw ReplayError(reason: "pool claim of unavailable coupon \(coupon)")
      }
      var userID: UInt32?
      if let user {
        let id = internUser(user)
        guard held(by: id, in: campaign) < campaigns[Int(campaign)].perUserLimit else {
          throw ReplayError(reason: "pool claim beyond the per-user limit")
        }
        userID = id
      }
      applyPoolClaimed(coupon: coupon, user: userID, time: time)
      if let request { remember(request, .claimed(coupon)) }
    case .locked, .unlocked, .lockExpired, .redeemed, .rolledBack:
      try replayLifecycle(event)
    case .requestRecorded(let tag, let outcome, _):
      guard OutcomeCode(rawValue: outcome) != nil || LifecycleOutcome(rawValue: outcome) != nil
      else {
        throw ReplayError(reason: "unknown remembered outcome \(outcome)")
      }
      remember(tag, .outcome(outcome))
    }
  }
}

/// Replays log records with claims in batches, so that a batch's hash-table misses overlap.
///
/// In a state of millions of coupons, most of a claim's replay time is two cache misses: the slot
/// its code hashes to in the code table, and its user's in the user table. One claim after another,
/// each miss waits for the one before. So claims are held back, up to ``claimsMax``, and replayed
/// in two passes: the first hashes every claim's code and user id and reads the slots they hash to
/// (independent loads, which the processor overlaps); the second applies the claims in log order,
/// finding those slots in cache and reusing the hashes. Any other record first flushes the claims
/// before it, so records are applied exactly in log order, and a failure names its own record.
struct ReplayBatcher {
  /// Why a record could not be replayed, and which record.
  struct Failure: Error {
    var sequence: UInt64
    var path: String
    var offset: Int64
    var reason: String
  }

  private struct HeldClaim {
    var sequence: UInt64
    var payload: Range<Int>
    /// Index into `paths`: one entry per segment, not a String (and its reference count) per
    /// claim.
    var path: Int
    var offset: Int64
    var tags: (code: UInt32, user: UInt32)?
  }

  static let claimsMax = 64

  /// Copies of the held claims' payloads (a record's payload is only borrowed during its visit).
  private var payloads: [UInt8] = []
  private var claims: [HeldClaim] = []
  /// The segment paths the held claims come from.
  private var paths: [String] = []
  /// The touched slots, folded together and kept, so that their loads are not optimised away.
  private(set) var touched: UInt64 = 0

  /// Replays `record` into `state`, or holds it back if it is a claim.
  mutating func add(_ record: LogRecordView, to state: inout StoreState) throws(Failure) {
    if record.type == EventType.claimed.rawValue {
      let start = payloads.count
      payloads.append(contentsOf: record.payload)
      if paths.last != record.path { paths.append(record.path) }
      claims.append(
        HeldClaim(
          sequence: record.sequence, payload: start..<payloads.count, path: paths.count - 1,
          offset: record.offset))
      if claims.count == Self.claimsMax { try flush(into: &state) }
      return
    }
    try flush(into: &state)
    do {
      try state.replay(type: record.type, payload: record.payload, sequence: record.sequence)
    } catch {
      throw Self.failure(error, record.sequence, record.path, record.offset)
    }
  }

  /// Replays the claims held back.
  mutating func flush(into state: inout StoreState) throws(Failure) {
    guard !claims.isEmpty else { return }
    // Moved out and back (not copied), so that no buffer is retained or copied per flush.
    var claims: [HeldClaim] = []
    var payloads: [UInt8] = []
    swap(&claims, &self.claims)
    swap(&payloads, &self.payloads)
    defer {
      claims.removeAll(keepingCapacity: true)
      payloads.removeAll(keepingCapacity: true)
      swap(&claims, &self.claims)
      swap(&payloads, &self.payloads)
      paths.removeAll(keepingCapacity: true)
    }
    var touched: UInt64 = 0
    let failure = payloads.withUnsafeBytes { payloads -> Failure? in
      for index in claims.indices {
        let strings = Self.strings(
          UnsafeRawBufferPointer(rebasing: payloads[claims[index].payload]))
        claims[index].tags = strings.map {
          (code: StringTable.tag($0.code), user: StringTable.tag($0.user))
        }
      }
      // A tight loop of independent loads, so that the processor has them all in flight at once.
      for claim in claims {
        guard let tags = claim.tags else { continue }
        touched &+= state.codes.touch(tag: tags.code) &+ state.users.touch(tag: tags.user)
      }
      for claim in claims {
        do {
          try state.replayClaimed(
            UnsafeRawBufferPointer(rebasing: payloads[claim.payload]), tags: claim.tags)
          state.lastSequence = claim.sequence
        } catch {
          return Self.failure(error, claim.sequence, paths[claim.path], claim.offset)
        }
      }
      return nil
    }
    self.touched &+= touched
    if let failure { throw failure }
  }

  /// A claim payload's user and code bytes, or `nil` if it does not parse (the replay reports it).
  private static func strings(_ payload: UnsafeRawBufferPointer) -> (
    user: UnsafeRawBufferPointer, code: UnsafeRawBufferPointer
  )? {
    var reader = ByteReader(payload)
    do {
      _ = try reader.readVarint()
      let user = try reader.readBytes(Int(clamping: try reader.readVarint()))
      let code = try reader.readBytes(Int(clamping: try reader.readVarint()))
      return (user, code)
    } catch {
      return nil
    }
  }

  private static func failure(
    _ error: any Error, _ sequence: UInt64, _ path: String, _ offset: Int64
  )
    -> Failure
  {
    let reason = (error as? ReplayError)?.reason ?? "\(error)"
    return Failure(sequence: sequence, path: path, offset: offset, reason: reason)
  }
}

/// Whether `bytes` are valid UTF-8. ASCII (every code and nearly every user id) is checked eight
/// bytes at a time; anything else goes to the standard library's validator, whose generic entry
/// point costs more than the whole rest of a claim's replay.
@inline(__always)
func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
  var high: UInt64 = 0
  var index = 0
  while index + 8 <= bytes.count {
    high |= bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
    index += 8
  }
  while index < bytes.count {
    high |= UInt64(bytes[index])
    index += 1
  }
  if high & 0x8080_8080_8080_8080 == 0 { return true }
  return String(validating: bytes, as: UTF8.self) != nil
}
