// Code pools on the writer: upload chunks and pregenerated books.
//
// An upload arrives as a series of chunk requests from one `addCodes` call (the caller's task
// checked every code's shape and cut the upload into chunks). Each chunk is one writer turn: log
// one `codesAdded` record and stage its codes (StoreState+Pool.swift), which checks them against
// the whole store; claims queued behind it are decided before the next chunk arrives. The final
// chunk makes the upload visible with one cheap pass. So no turn costs more than a chunk's worth
// of hashing, plus that pass (a few milliseconds for a million codes).
//
// A pregenerated book is generated in the writer's turn that creates the campaign: the codes
// must be unique across the store, which only the writer knows, and creation must be atomic. That
// turn is proportional to the book's size, which is why a pregenerated book holds at most
// 100,000 codes; bigger pools are uploaded.
//
// Durability: as for every write, nothing here is durable; the reply to each chunk is released
// after the `fdatasync` that covers its record, and the upload is durable when the final chunk's
// reply is.

import CouponLog

/// One chunk of an upload, as sent by ``CouponStore/addCodes(_:to:requestID:progress:)``.
struct UploadChunk: Sendable {
  /// The campaign's id (looked up by the first chunk).
  var campaign: String
  /// The upload the chunk continues, from the first chunk's reply; `nil` for the first chunk.
  var upload: UInt64?
  /// The chunk's codes, each of valid shape.
  var codes: [String]
  /// Whether this is the last chunk, which makes the upload visible.
  var final: Bool
  /// The request's id and fingerprint (checked by the first and the final chunk).
  var tag: RequestTag?
}

/// The writer's answer to an upload chunk. Skipped codes are named by their position among the
/// codes sent, over the whole upload.
enum UploadReply: Sendable {
  /// The chunk was logged and staged; later chunks name this upload.
  case staged(upload: UInt64, skipped: [SkippedCode])
  /// The upload is visible: `added` new codes.
  case finished(added: Int, skipped: [SkippedCode])
  /// The request id names an upload that already finished: this one changed nothing.
  case retried
}

extension Engine {
  /// Handles one upload chunk.
  mutating func addCodes(_ chunk: UploadChunk, now: Int64) -> Reply {
    let campaign: UInt32
    let upload: UInt64
    if let continued = chunk.upload {
      guard let staged = state.stagedUploads[continued] else {
        preconditionFailure("chunk of upload \(continued), which is not staged")
      }
      campaign = staged.campaign
      upload = continued
    } else {
      if let tag = chunk.tag, let retry = rememberedUpload(tag) { return retry }
      guard let index = state.campaignID(chunk.campaign) else {
        return .failure(.invalid("campaign", "no campaign has the id \"\(chunk.campaign)\""))
      }
      guard state.campaigns[Int(index)].isPool else {
        return .failure(
          .invalid(
            "campaign",
            "campaign \"\(chunk.campaign)\" generates its codes; upload codes to a pool campaign "
              + "(codes: .pool)"))
      }
      campaign = index
      upload = log.nextSequence
      if chunk.final, chunk.codes.isEmpty, chunk.tag == nil {
        return .upload(.finished(added: 0, skipped: []))  // nothing to log
      }
    }
    if chunk.final, let tag = chunk.tag, let retry = rememberedUpload(tag) {
      // Another upload with this id finished meanwhile. No final record: the staged codes stay
      // invisible, in the writer as in replay.
      state.stagedUploads[upload] = nil
      return retry
    }
    guard state.coupons.count + chunk.codes.count <= StringTable.countMax else {
      state.stagedUploads[upload] = nil
      return .failure(
        CouponStoreError(
          code: .capacityExceeded,
          message: "the store cannot hold \(chunk.codes.count) more coupons (at most "
            + "\(StringTable.countMax) in all); the upload added nothing", field: "codes"))
    }
    append(
      .codesAdded(
        campaign: campaign, upload: upload, final: chunk.final, codes: chunk.codes, time: now,
        request: chunk.final ? chunk.tag : nil))
    let skipped = state.stageUploadChunk(upload: upload, campaign: campaign, codes: chunk.codes)
    guard chunk.final else { return .upload(.staged(upload: upload, skipped: skipped)) }
    let finished = state.finishUpload(upload)
    if let tag = chunk.tag { state.remember(tag, .upload) }
    return .upload(.finished(added: finished.added, skipped: skipped + finished.skipped))
  }

  /// The answer to an upload whose id is remembered: a conflict, or a retry of a finished upload,
  /// whose codes are all in the store (its detailed result is not kept).
  private func rememberedUpload(_ tag: RequestTag) -> Reply? {
    guard let remembered = state.requests[tag.id] else { return nil }
    guard remembered.fingerprint == tag.fingerprint else { return .failure(conflict(tag)) }
    return .upload(.retried)
  }

  /// Generates `count` codes of `pattern`, new to the store, for the pregenerated campaign that
  /// will get index `campaign`; logs them as the non-final chunks of one upload and stages them.
  /// The campaign's `campaignCreated` record, logged next, makes them visible. Returns `false`,
  /// having changed nothing, if the pattern's code space is too crowded.
  mutating func pregenerate(_ pattern: CodePattern, count: Int, campaign: UInt32, now: Int64)
    -> Bool
  {
    guard count > 0 else { return true }
    // Decide every code before changing anything: state must change only with logged records.
    let generator = CodeGenerator(pattern)
    var fresh = StringTable(capacity: count)
    var scratch: [UInt8] = []
    for _ in 0..<count {
      var attempts = 0
      while true {
        generator.generate(into: &scratch, random: &random)
        let usable = scratch.withUnsafeBytes { bytes in
          // A code staged by an upload that never finished is invisible: staging adopts it.
          let taken = state.codes.find(bytes).map { !state.coupons[Int($0)].isStaged } ?? false
          return !taken && fresh.findOrInsert(bytes).inserted
        }
        if usable { break }
        attempts += 1
        if attempts == Self.codeAttemptsMax { return false }
      }
    }
    let codes = (0..<UInt32(count)).map { fresh.string(of: $0) }
    let upload = log.nextSequence
    for range in UploadChunking.ranges(codes) {
      let chunk = Array(codes[range])
      append(
        .codesAdded(
          campaign: campaign, upload: upload, final: false, codes: chunk, time: now, request: nil))
      let skipped = state.stageUploadChunk(upload: upload, campaign: campaign, codes: chunk)
      precondition(skipped.isEmpty, "a pregenerated code was taken")
    }
    return true
  }
}
