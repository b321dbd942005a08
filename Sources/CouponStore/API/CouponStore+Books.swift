// The public API of coupon books: uploading pool codes, the coupon lifecycle, and a coupon's
// audit trail.

import CouponLog
import Foundation

extension CouponStore {
  // MARK: Code pools

  /// Uploads `codes` to the pool of `campaign` (a campaign created with `codes: .pool` or
  /// `.pregenerated`), where claims draw them uniformly at random. Durable when this returns.
  ///
  /// Each code must be 1–64 characters without control characters, and new to the store (no
  /// coupon of any campaign has it); a code that appears twice is added once. The codes that are
  /// refused come back in ``AddCodesResult/rejected`` with their reason, in upload order; the
  /// others are added, and the campaign's stock grows by ``AddCodesResult/added``.
  ///
  /// Any number of codes may be uploaded in one call (a million takes about a second). They are
  /// written as a series of bounded log records, each one writer turn, so claims are decided
  /// between them; the codes become visible together when the last record is written, and a
  /// crash before that adds none of them. `progress`, if given, is called on the caller's task
  /// after each record is durable.
  ///
  /// With a `requestID`, a retry of a finished upload changes nothing and answers
  /// `added: 0` (every code it carries is in the store), with the same malformed codes rejected.
  ///
  /// - Throws: ``CouponStoreError/Code/invalidArgument`` for an unknown campaign, a campaign that
  ///   generates its codes, or a malformed request id; ``CouponStoreError/Code/capacityExceeded``
  ///   if the store cannot hold that many more coupons.
  public func addCodes(
    _ codes: [String], to campaign: CampaignID, requestID: String? = nil,
    progress: (@Sendable (AddCodesProgress) -> Void)? = nil
  ) async throws(CouponStoreError) -> AddCodesResult {
    try Validate.campaignID(campaign)
    let tag = try Validate.requestTag(requestID) {
      var print = Fingerprint(kind: 8)
      print.mix(campaign)
      print.mix(number: Int64(codes.count))
      for code in codes { print.mix(code) }
      return print
    }
    let plan = UploadPlan(codes)
    var upload: UInt64?
    var skipped: [SkippedCode] = []
    for range in UploadChunking.ranges(plan.accepted) {
      let chunk = UploadChunk(
        campaign: campaign, upload: upload, codes: Array(plan.accepted[range]),
        final: range.upperBound == plan.accepted.count, tag: tag)
      switch try await send(.addCodes(chunk)) {
      case .upload(.staged(let id, let skippedHere)):
        upload = id
        skipped += skippedHere
        let done = plan.inputCount(range.upperBound)
        progress?(AddCodesProgress(codesDone: done, codesTotal: codes.count))
      case .upload(.finished(let added, let skippedHere)):
        skipped += skippedHere
        skipped.sort { $0.position < $1.position }
        progress?(AddCodesProgress(codesDone: codes.count, codesTotal: codes.count))
        return AddCodesResult(added: added, rejected: plan.rejections(codes, skipped: skipped))
      case .upload(.retried):
        // The first answer is not kept; its codes are all in the store.
        progress?(AddCodesProgress(codesDone: codes.count, codesTotal: codes.count))
        return AddCodesResult(added: 0, rejected: plan.rejections(codes, skipped: []))
      default:
        preconditionFailure("unexpected reply to addCodes")
      }
    }
    preconditionFailure("an upload's last chunk is final")
  }

  // MARK: Lifecycle

  /// Locks `code` for a checkout by its owner, until the campaign's `lockTimeout` runs out (the
  /// coupon's ``Coupon/lockExpiresAt``). Durable when this returns.
  ///
  /// Only the user the coupon is assigned to may lock it (`user: nil` for a coupon issued
  /// anonymously); for anyone else the answer is ``LockResult/notFound``, exactly as for a code
  /// that does not exist. Refusals: ``LockResult/alreadyLocked`` (a live lock exists),
  /// ``LockResult/fullyRedeemed``, ``LockResult/expired`` (the campaign's `expiresAt` passed).
  /// With a `requestID`, a retry returns the first answer and changes nothing (a success
  /// carries the coupon as it is at the retry), as for every lifecycle call.
  ///
  /// - Throws: ``CouponStoreError/Code/invalidArgument`` for a malformed code, user or request id.
  public func lock(code: String, user: String?, requestID: String? = nil)
    async throws(CouponStoreError) -> LockResult
  {
    let (outcome, coupon) = try await lifecycle(.lock, code: code, user: user, requestID)
    switch outcome {
    case .done: return .locked(coupon!)
    case .notFound: return .notFound
    case .alreadyLocked: return .alreadyLocked
    case .fullyRedeemed: return .fullyRedeemed
    case .expired: return .expired
    case .notLocked, .notRedeemed: preconditionFailure("lock answered \(outcome)")
    }
  }

  /// Releases the owner's lock on `code`: the coupon is `assigned` again. Durable when this
  /// returns. Refusals: ``UnlockResult/notFound`` (unknown code, or not this user's),
  /// ``UnlockResult/notLocked``.
  public func unlock(code: String, user: String?, requestID: String? = nil)
    async throws(CouponStoreError) -> UnlockResult
  {
    let (outcome, coupon) = try await lifecycle(.unlock, code: code, user: user, requestID)
    switch outcome {
    case .done: return .unlocked(coupon!)
    case .notFound: return .notFound
    case .notLocked: return .notLocked
    case .alreadyLocked, .fullyRedeemed, .expired, .notRedeemed:
      preconditionFailure("unlock answered \(outcome)")
    }
  }

  /// Redeems `code` once, under its owner's live lock. Durable when this returns.
  ///
  /// After the campaign's last allowed redemption (`redemptionsPerCoupon`) the coupon is
  /// `redeemed`; before it, it is `assigned` again, ready for the next lock. Refusals:
  /// ``RedeemResult/notFound`` (unknown code, or not this user's), ``RedeemResult/notLocked``
  /// (no live lock: never locked, unlocked, or expired), ``RedeemResult/fullyRedeemed``,
  /// ``RedeemResult/expired``.
  public func redeem(code: String, user: String?, requestID: String? = nil)
    async throws(CouponStoreError) -> RedeemResult
  {
    let (outcome, coupon) = try await lifecycle(.redeem, code: code, user: user, requestID)
    switch outcome {
    case .done: return .redeemed(coupon!)
    case .notFound: return .notFound
    case .notLocked: return .notLocked
    case .fullyRedeemed: return .fullyRedeemed
    case .expired: return .expired
    case .alreadyLocked, .notRedeemed: preconditionFailure("redeem answered \(outcome)")
    }
  }

  /// Rolls back one redemption of `code` (a refund, a failed payment): the redemption count
  /// drops by one, a `redeemed` coupon is `assigned` again, and the rollback is recorded in the
  /// coupon's history. Durable when this returns. Refusals: ``RollbackResult/notFound``
  /// (unknown code, or not this user's), ``RollbackResult/notRedeemed``.
  public func rollback(code: String, user: String?, requestID: String? = nil)
    async throws(CouponStoreError) -> RollbackResult
  {
    let (outcome, coupon) = try await lifecycle(.rollback, code: code, user: user, requestID)
    switch outcome {
    case .done: return .rolledBack(coupon!)
    case .notFound: return .notFound
    case .notRedeemed: return .notRedeemed
    case .alreadyLocked, .notLocked, .fullyRedeemed, .expired:
      preconditionFailure("rollback answered \(outcome)")
    }
  }

  private func lifecycle(
    _ action: LifecycleAction, code: String, user: String?, _ requestID: String?
  ) async throws(CouponStoreError) -> (LifecycleOutcome, Coupon?) {
    try Validate.code(code)
    try Validate.user(user)
    let tag = try Validate.requestTag(requestID) {
      var print = Fingerprint(kind: 4 + action.rawValue)
      print.mix(code)
      print.mix(user)
      return print
    }
    switch try await send(
      .lifecycle(LifecycleRequest(action: action, code: code, user: user, tag: tag)))
    {
    case .lifecycle(let outcome, let coupon): return (outcome, coupon)
    default: preconditionFailure("unexpected reply to \(action)")
    }
  }

  // MARK: Audit trail

  /// The coupon with this code and its full history (assigned, locked, unlocked, expired,
  /// redeemed, rolled back, each with its time and user), or `nil` if no coupon has the code.
  public func couponDetails(code: String) async throws(CouponStoreError) -> CouponDetails? {
    guard CodeRules.shapeProblem(code) == nil else { return nil }
    switch try await send(.read(.couponDetails(code: code))) {
    case .couponDetails(let details): return details
    default: preconditionFailure("unexpected reply to couponDetails(code:)")
    }
  }

  /// Replays the log of `directory` read-only (no lock taken, nothing written) and returns the
  /// coupon with this code and its history, or `nil`. What `couponstore inspect DIR --code`
  /// prints. A lock shown here may have run out since the last record was written: compare
  /// ``Coupon/lockExpiresAt`` with the time.
  ///
  /// - Throws: ``CouponStoreError/Code/corruption`` naming file and offset for damage before the
  ///   tail; I/O errors.
  public static func inspectCoupon(
    directory: String, code: String, fileSystem: any FileSystem = RealFileSystem()
  ) throws(CouponStoreError) -> CouponDetails? {
    var options = Options()
    options.fileSystem = fileSystem
    guard CodeRules.shapeProblem(code) == nil else { return nil }
    let state = try recoverState(directory: directory, options: options, readOnly: true).state
    return state.couponID(code: code).map { state.couponDetails($0) }
  }
}

/// An upload split, on the caller's task, into the codes of valid shape (sent to the writer) and
/// the malformed ones (rejected at once), with the bookkeeping that maps writer positions back to
/// upload positions.
struct UploadPlan {
  /// The well-formed codes, in upload order.
  private(set) var accepted: [String] = []
  /// The malformed codes' positions in the upload, ascending, and why.
  private(set) var malformed: [(index: Int, reason: AddCodesResult.Reason)] = []

  init(_ codes: [String]) {
    guard let firstMalformed = codes.firstIndex(where: { CodeRules.shapeProblem($0) != nil })
    else {
      accepted = codes  // the usual case: shares the caller's array, no copy
      return
    }
    accepted.reserveCapacity(codes.count)
    accepted.append(contentsOf: codes[..<firstMalformed])
    for (index, code) in codes.enumerated().dropFirst(firstMalformed) {
      if let problem = CodeRules.shapeProblem(code) {
        malformed.append((index, problem))
      } else {
        accepted.append(code)
      }
    }
  }

  /// The upload position of the accepted code at `position`: `position` plus the number of
  /// malformed codes before it. `malformed[k].index - k` never decreases, so this is a binary
  /// search for the first `k` with `malformed[k].index - k > position`.
  func inputIndex(_ position: Int) -> Int {
    var low = 0
    var high = malformed.count
    while low < high {
      let middle = (low + high) / 2
      if malformed[middle].index - middle > position { high = middle } else { low = middle + 1 }
    }
    return position + low
  }

  /// How many upload codes are accounted for once the first `sent` accepted codes are.
  func inputCount(_ sent: Int) -> Int {
    sent == 0 ? 0 : inputIndex(sent - 1) + 1
  }

  /// The malformed codes and the ones the writer skipped, merged in upload order.
  func rejections(_ codes: [String], skipped: [SkippedCode]) -> [AddCodesResult.Rejection] {
    var rejections: [AddCodesResult.Rejection] = []
    rejections.reserveCapacity(malformed.count + skipped.count)
    var next = 0
    for (position, reason) in skipped {
      let index = inputIndex(position)
      while next < malformed.count, malformed[next].index < index {
        rejections.append(.init(code: codes[malformed[next].index], reason: malformed[next].reason))
        next += 1
      }
      rejections.append(.init(code: codes[index], reason: reason))
    }
    for (index, reason) in malformed[next...] {
      rejections.append(.init(code: codes[index], reason: reason))
    }
    return rejections
  }
}
