// Code pools in the state: staging an upload's chunks, applying an upload, committing a
// pregenerated book, and replaying `codesAdded`.
//
// An upload is logged as `codesAdded` chunks that share an upload id; each chunk is staged in
// `stagedUploads` and nothing is visible until the chunk marked `final` applies them all at once,
// so a crash in the middle of an upload applies nothing. A pregenerated campaign's codes are
// logged as non-final chunks *before* its `campaignCreated` record, which commits them: a crash
// that tears the batch leaves either the whole campaign with all its codes, or nothing.
//
// Applying skips every code that is already in the store, or earlier in the same upload, and
// reports it. The writer and replay apply with the same function, so they skip the same codes:
// a code that entered the store while the upload was being staged (a concurrent upload, a
// generated claim) is caught here, deterministically, without staging reservations.

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

/// A code an upload skipped: its position among the upload's codes as logged, and why.
typealias SkippedCode = (position: Int, reason: AddCodesResult.Reason)

extension StoreState {
  /// Stages a non-final chunk of `upload`.
  mutating func stageUploadChunk(upload: UInt64, campaign: UInt32, codes: [String]) {
    if stagedUploads[upload] == nil {
      stagedUploads[upload] = (campaign, codes)
    } else {
      stagedUploads[upload]?.codes.append(contentsOf: codes)
    }
  }

  /// Adds `newCodes` to the pool of `campaign` in order, as available coupons; skips each code
  /// already in the store or earlier in the upload and returns those, in order.
  mutating func applyUpload(campaign: UInt32, codes newCodes: [String]) -> [SkippedCode] {
    precondition(campaigns[Int(campaign)].isPool, "upload to generated campaign \(campaign)")
    let firstNew = UInt32(codes.count)
    var skipped: [SkippedCode] = []
    coupons.reserveCapacity(coupons.count + newCodes.count)
    campaigns[Int(campaign)].available.reserveCapacity(
      campaigns[Int(campaign)].available.count + newCodes.count)
    for (position, code) in newCodes.enumerated() {
      let (coupon, inserted) = code.withUTF8Bytes { codes.findOrInsert($0) }
      guard inserted else {
        skipped.append((position, coupon >= firstNew ? .duplicateInUpload : .alreadyExists))
        continue
      }
      precondition(Int(coupon) == coupons.count, "code table and coupons out of step")
      coupons.append(
        CouponRecord(
          campaign: campaign, owner: CouponRecord.none, nextOfOwner: CouponRecord.none,
          poolSlot: UInt32(campaigns[Int(campaign)].available.count), issuedAt: 0, redemptions: 0,
          state: .available))
      campaigns[Int(campaign)].available.append(coupon)
    }
    let added = newCodes.count - skipped.count
    campaigns[Int(campaign)].stock += added
    campaigns[Int(campaign)].countsByState[Int(CouponState.available.rawValue)] += added
    return skipped
  }

  /// Commits the codes of the pregenerated campaign `campaign` (just created): the upload staged
  /// for it right before its `campaignCreated` record. Returns `false` if they are not exactly
  /// `count` fresh codes (damage, or a bug).
  ///
  /// Staged uploads for the same index with smaller ids are chunks of an earlier creation that a
  /// crash cut off before its `campaignCreated` record; they are dropped.
  mutating func commitPregenerated(campaign: UInt32, count: Int) -> Bool {
    let candidates = stagedUploads.filter { $0.value.campaign == campaign }.keys.sorted()
    for upload in candidates.dropLast() { stagedUploads[upload] = nil }
    guard count > 0 else {
      if let last = candidates.last { stagedUploads[last] = nil }
      return true
    }
    guard let upload = candidates.last, let codes = stagedUploads.removeValue(forKey: upload)?.codes,
      codes.count == count, codes.allSatisfy({ CodeRules.shapeProblem($0) == nil })
    else { return false }
    return applyUpload(campaign: campaign, codes: codes).isEmpty
  }

  // MARK: Replay

  /// Replays one `codesAdded` chunk.
  mutating func replayCodesAdded(
    campaign: UInt32, upload: UInt64, final: Bool, codes newCodes: [String], request: RequestTag?
  ) throws {
    if let staged = stagedUploads[upload], staged.campaign != campaign {
      throw ReplayError(reason: "upload \(upload) spans two campaigns")
    }
    guard final else {
      // A non-final chunk may name the campaign the next records create (a pregenerated book).
      guard campaign <= UInt32(campaigns.count),
        campaign == UInt32(campaigns.count) || campaigns[Int(campaign)].isPool
      else {
        throw ReplayError(reason: "codes staged for unknown or generated campaign \(campaign)")
      }
      stageUploadChunk(upload: upload, campaign: campaign, codes: newCodes)
      return
    }
    guard campaign < UInt32(campaigns.count), campaigns[Int(campaign)].isPool else {
      throw ReplayError(reason: "codes added to unknown or generated campaign \(campaign)")
    }
    var codes = stagedUploads.removeValue(forKey: upload)?.codes ?? []
    codes.append(contentsOf: newCodes)
    guard codes.allSatisfy({ CodeRules.shapeProblem($0) == nil }) else {
      throw ReplayError(reason: "upload \(upload) holds a malformed code")
    }
    guard coupons.count + codes.count <= StringTable.countMax else {
      throw ReplayError(reason: "upload \(upload) exceeds the store's capacity")
    }
    _ = applyUpload(campaign: campaign, codes: codes)
    if let request { remember(request, .upload) }
  }

  /// After replaying `campaignCreated`: a pregenerated campaign commits its staged codes.
  mutating func replayPregenerated(campaign: UInt32) throws {
    guard case .pregenerated(_, let count) = campaigns[Int(campaign)].record.codes else { return }
    guard commitPregenerated(campaign: campaign, count: count) else {
      throw ReplayError(
        reason: "pregenerated campaign \(campaigns[Int(campaign)].record.id) lacks its \(count) codes")
    }
  }
}
