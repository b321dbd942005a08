// Code pools in the state: staging an upload's chunks, making an upload visible, committing a
// pregenerated book, and replaying `codesAdded`.
//
// An upload is logged as `codesAdded` chunks that share an upload id. Each chunk is applied when
// it is logged (by the writer) or replayed: its codes enter the code table as *staged* coupons,
// present in `coupons` (so ids are assigned in log order, identically in the writer and in
// replay, and a code cannot be taken twice) but invisible: `available` without a pool slot, and
// with the upload's id in `issuedAt`. `couponID(code:)` never returns a staged coupon, claims
// never draw one, statistics do not count one. The chunk marked `final` makes the whole upload
// visible with one cheap pass (a pool slot each), so no writer turn does work proportional to
// the whole upload, and a crash before the final chunk leaves nothing visible.
//
// A staged coupon whose upload never finishes (its process crashed, or its request id was
// answered by another upload) stays invisible; an upload that later carries the same code adopts
// it, so a re-upload after a crash adds every code. Overlapping uploads in flight at the same
// time may stage the same coupon; the first to finish makes it visible, and the other reports it
// as already in the store. Every one of these decisions depends only on the state and the log
// order, so replay makes the same ones.
//
// A pregenerated campaign's codes are logged as non-final chunks *before* its `campaignCreated`
// record, which makes them visible: a crash that tears the batch leaves the whole campaign with
// all its codes, or nothing.

import CouponLog

/// How an upload is cut into `codesAdded` records: each chunk holds at most ``codesMax`` codes
/// and ``bytesMax`` bytes of encoded codes, far below ``EventCoder/payloadBytesMax``, so that no
/// record is large and the writer spends a bounded time on each chunk.
enum UploadChunking {
  static let codesMax = 16_384
  static let bytesMax = 256 << 10
  /// Encoded size of a code: its bytes plus a varint length of at most 2 bytes (codes are at most
  /// ``CodeRules/codeBytesMax`` = 256 bytes).
  static func encodedBytes(_ code: String) -> Int { code.utf8.count + 2 }

  /// The chunks of `codes`, in order; at least one (empty) chunk for no codes.
  static func ranges(_ codes: [String]) -> [Range<Int>] {
    precondition(
      bytesMax + CodeRules.codeBytesMax + 2 + 64 <= EventCoder.payloadBytesMax,
      "upload chunks must fit an event payload")
    var ranges: [Range<Int>] = []
    var start = 0
    var bytes = 0
    for (index, code) in codes.enumerated() {
      let size = encodedBytes(code)
      if index > start, bytes + size > bytesMax || index - start >= codesMax {
        ranges.append(start..<index)
        start = index
        bytes = 0
      }
      bytes += size
    }
    ranges.append(start..<codes.count)
    return ranges
  }
}

/// A code an upload skipped: its position among the upload's (well-formed) codes, and why.
typealias SkippedCode = (position: Int, reason: AddCodesResult.Reason)

/// What staging one code did.
enum Staging {
  /// The code's coupon is staged for the upload.
  case staged(UInt32)
  /// The code was skipped.
  case skipped(AddCodesResult.Reason)
}

extension CouponRecord {
  /// Whether the coupon is staged by an upload that has not finished: invisible.
  var isStaged: Bool { state == .available && poolSlot == CouponRecord.none }
}

extension StoreState {
  /// Stages one code for `upload` to `campaign`: a new staged coupon, or an invisible coupon of
  /// another upload that never finished (adopted). Returns the coupon, or why the code is
  /// skipped (already visible in the store, or staged earlier by this very upload).
  mutating func stageCode(_ code: UnsafeRawBufferPointer, upload: UInt64, campaign: UInt32)
    -> Staging
  {
    let (coupon, inserted) = codes.findOrInsert(code)
    if inserted {
      precondition(Int(coupon) == coupons.count, "code table and coupons out of step")
      coupons.append(
        CouponRecord(
          campaign: campaign, owner: CouponRecord.none, nextOfOwner: CouponRecord.none,
          poolSlot: CouponRecord.none, issuedAt: Int64(bitPattern: upload), redemptions: 0,
          state: .available))
      return .staged(coupon)
    }
    guard coupons[Int(coupon)].isStaged else { return .skipped(.alreadyExists) }
    if coupons[Int(coupon)].issuedAt == Int64(bitPattern: upload) {
      return .skipped(.duplicateInUpload)
    }
    coupons[Int(coupon)].campaign = campaign
    coupons[Int(coupon)].issuedAt = Int64(bitPattern: upload)
    return .staged(coupon)
  }

  /// Stages the codes of one chunk of `upload` (logged just before) and returns the ones
  /// skipped, by their position in the whole upload.
  mutating func stageUploadChunk(upload: UInt64, campaign: UInt32, codes newCodes: [String])
    -> [SkippedCode]
  {
    let offset = stagedUploads[upload]?.coupons.count ?? 0
    var staged: [UInt32] = []
    staged.reserveCapacity(newCodes.count)
    var skipped: [SkippedCode] = []
    for (index, code) in newCodes.enumerated() {
      switch code.withUTF8Bytes({ stageCode($0, upload: upload, campaign: campaign) }) {
      case .staged(let coupon):
        staged.append(coupon)
      case .skipped(let reason):
        staged.append(CouponRecord.none)
        skipped.append((offset + index, reason))
      }
    }
    if stagedUploads[upload] == nil {
      stagedUploads[upload] = (campaign, staged)
    } else {
      stagedUploads[upload]?.coupons.append(contentsOf: staged)
    }
    return skipped
  }

  /// Makes the coupons staged by `upload` visible in the pool of its campaign, in upload order,
  /// and forgets the upload. A coupon another upload made visible first is skipped (already in
  /// the store). Returns how many were added, and the ones skipped.
  mutating func finishUpload(_ upload: UInt64) -> (added: Int, skipped: [SkippedCode]) {
    guard let (campaign, staged) = stagedUploads.removeValue(forKey: upload).map({ ($0.0, $0.1) })
    else { return (0, []) }
    precondition(campaigns[Int(campaign)].isPool, "upload to generated campaign \(campaign)")
    var skipped: [SkippedCode] = []
    var added = 0
    for (position, coupon) in staged.enumerated() where coupon != CouponRecord.none {
      guard coupons[Int(coupon)].isStaged else {
        skipped.append((position, .alreadyExists))
        continue
      }
      coupons[Int(coupon)].campaign = campaign
      coupons[Int(coupon)].issuedAt = 0
      coupons[Int(coupon)].poolSlot = UInt32(campaigns[Int(campaign)].available.count)
      campaigns[Int(campaign)].available.append(coupon)
      added += 1
    }
    campaigns[Int(campaign)].stock += added
    campaigns[Int(campaign)].countsByState[Int(CouponState.available.rawValue)] += added
    return (added, skipped)
  }

  /// Commits the codes of the pregenerated campaign `campaign` (just created): the upload staged
  /// for it right before its `campaignCreated` record. Returns `false` unless that makes exactly
  /// `count` codes visible (damage, or a bug).
  ///
  /// Staged uploads for the same index with smaller ids are chunks of an earlier creation that a
  /// crash cut off before its `campaignCreated` record; they are forgotten (their coupons stay
  /// invisible, or were adopted by the newer upload).
  mutating func commitPregenerated(campaign: UInt32, count: Int) -> Bool {
    let candidates = stagedUploads.filter { $0.value.campaign == campaign }.keys.sorted()
    for upload in candidates.dropLast() { stagedUploads[upload] = nil }
    guard count > 0 else {
      if let last = candidates.last { stagedUploads[last] = nil }
      return true
    }
    guard let upload = candidates.last else { return false }
    let (added, skipped) = finishUpload(upload)
    return added == count && skipped.isEmpty
  }

  // MARK: Replay

  /// Replays one `codesAdded` chunk.
  mutating func replayCodesAdded(
    campaign: UInt32, upload: UInt64, final: Bool, codes newCodes: [String], request: RequestTag?
  ) throws {
    if let staged = stagedUploads[upload], staged.campaign != campaign {
      throw ReplayError(reason: "upload \(upload) spans two campaigns")
    }
    // A non-final chunk may name the campaign the next records create (a pregenerated book).
    let limit = final ? UInt32(campaigns.count) : UInt32(campaigns.count) + 1
    guard campaign < limit, campaign == UInt32(campaigns.count) || campaigns[Int(campaign)].isPool
    else {
      throw ReplayError(reason: "codes added to unknown or generated campaign \(campaign)")
    }
    guard newCodes.allSatisfy({ CodeRules.shapeProblem($0) == nil }) else {
      throw ReplayError(reason: "upload \(upload) holds a malformed code")
    }
    guard coupons.count + newCodes.count <= StringTable.countMax else {
      throw ReplayError(reason: "upload \(upload) exceeds the store's capacity")
    }
    _ = stageUploadChunk(upload: upload, campaign: campaign, codes: newCodes)
    guard final else { return }
    _ = finishUpload(upload)
    if let request { remember(request, .upload) }
  }

  /// After replaying `campaignCreated`: a pregenerated campaign commits its staged codes.
  mutating func replayPregenerated(campaign: UInt32) throws {
    guard case .pregenerated(_, let count) = campaigns[Int(campaign)].record.codes else { return }
    guard commitPregenerated(campaign: campaign, count: count) else {
      throw ReplayError(
        reason:
          "pregenerated campaign \(campaigns[Int(campaign)].record.id) lacks its \(count) codes")
    }
  }
}
