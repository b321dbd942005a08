// The decisions: each request, in arrival order, against the in-memory state.
//
// The engine lives on the writer thread. For each request it checks the rules (campaign exists,
// started, not ended, per-user limit, stock, code uniqueness, idempotency), and for an accepted
// write it logs the event into the current batch and applies it to the state, in that order, with
// the same `apply…` functions replay uses. A rejection writes nothing (unless the request carried
// an id, whose answer must survive a restart).
//
// Durability: nothing here is durable. The events land in the log's batch buffer; the writer
// flushes the batch with one `pwrite`, and a caller's reply is released by the syncer only after
// the `fdatasync` covering every event decided before the reply.

import CouponLog
import Foundation

/// The writer thread's state: business state, the log, and the random source.
struct Engine {
  var state: StoreState
  let log: LogWriter
  var random = SecureRandom()
  /// Locks in expiry order (derived from `state.lockExpiry`; see LockExpiryQueue.swift).
  var lockQueue: LockExpiryQueue
  /// Reused scratch buffer for generated codes.
  var codeScratch: [UInt8] = []
  /// Claims prepared ahead of their decisions, by ``LookaheadSource`` (Engine+Lookahead.swift).
  var lookaheads = [ClaimLookahead(), ClaimLookahead()]

  /// The last campaign id looked up, and its index: a flash sale (and every batch) claims from
  /// one campaign over and over, and comparing two equal strings is cheaper than hashing one.
  private var lastCampaign: (id: String, index: UInt32)?

  /// How many times a generated code may collide before the claim gives up.
  static let codeAttemptsMax = 64

  init(state: StoreState, log: LogWriter) {
    self.state = state
    self.log = log
    self.lockQueue = LockExpiryQueue(state.lockExpiry)
    // Uploads still staged after recovery lost their callers with the previous process: they can
    // never finish. Their coupons stay staged (invisible) until an upload of the same codes
    // adopts them; only the lists go (replay rebuilds them on every open, and they go again).
    self.state.stagedUploads.removeAll()
  }

  /// The sequence number of the last event appended (durable or not).
  var lastAppended: UInt64 { log.nextSequence - 1 }

  /// Decides `request`. `position` is its place in the writer's batch, for the claims prepared
  /// ahead (``prepare(_:startingAt:in:)``); `nil` if none were.
  mutating func handle(_ request: Request, now: Int64, position: Int? = nil) -> Reply {
    expireLocks(now: now)
    switch request {
    case .createCampaign(let spec, let tag):
      return createCampaign(spec, tag: tag, now: now)
    case .claim(let campaign, let user, let tag):
      if let conflict = conflicting(tag) { return .failure(conflict) }
      let prepared = position.flatMap {
        lookaheads[LookaheadSource.requests.rawValue].entry(at: $0)
      }
      return .claim(
        claim(campaign: campaign, user: user, tag: tag, now: now, prepared: prepared))
    case .claimCode(let code, let user, let tag):
      if let conflict = conflicting(tag) { return .failure(conflict) }
      return .claim(claimCode(code, user: user, tag: tag, now: now))
    case .claimBatch(let claims):
      // All or nothing on id reuse: a conflicting id refuses the batch before anything changes,
      // whether it names a remembered request or another claim of this batch (which would be
      // remembered by the time its twin is decided, and answered as if it were a retry).
      var named: [String: UInt64] = [:]
      for claim in claims {
        if let conflict = conflicting(claim.tag) { return .failure(conflict) }
        guard let tag = claim.tag, state.requestWindow > 0 else { continue }
        if let earlier = named.updateValue(tag.fingerprint, forKey: tag.id),
          earlier != tag.fingerprint
        {
          return .failure(conflict(tag))
        }
      }
      var results: [ClaimResult] = []
      results.reserveCapacity(claims.count)
      for (position, claim) in claims.enumerated() {
        if position % ClaimLookahead.window == 0 {
          prepare(
            claims[position..<min(position + ClaimLookahead.window, claims.count)].lazy.map {
              (campaign: $0.campaign, user: $0.user)
            }, startingAt: position, in: .batch)
        }
        results.append(
          self.claim(
            campaign: claim.campaign, user: claim.user, tag: claim.tag, now: now,
            prepared: lookaheads[LookaheadSource.batch.rawValue].entry(at: position)))
      }
      return .claims(results)
    case .lifecycle(let request):
      return lifecycle(request, now: now)
    case .addCodes(let chunk):
      return addCodes(chunk, now: now)
    case .read(let read):
      return self.read(read)
    case .snapshot:
      preconditionFailure("the writer thread handles snapshot requests itself")
    case .close:
      return .done
    }
  }

  // MARK: Campaigns

  private mutating func createCampaign(_ spec: CampaignSpec, tag: RequestTag?, now: Int64) -> Reply
  {
    if let tag, let remembered = state.requests[tag.id] {
      guard remembered.fingerprint == tag.fingerprint else { return .failure(conflict(tag)) }
      if case .campaign(let index) = remembered.outcome {
        return .campaign(state.campaign(at: index))
      }
      return .failure(conflict(tag))
    }
    var id = spec.id ?? ""
    if spec.id == nil {
      repeat {
        id = String(format: "%08x", UInt32(truncatingIfNeeded: random.nextUInt64()))
      } while state.campaignIndex[id] != nil
    } else if state.campaignIndex[id] != nil {
      return .failure(
        CouponStoreError(
          code: .campaignExists,
          message: "a campaign with id \"\(id)\" already exists; choose another id or omit it",
          field: "id"))
    }
    let codes: CodeSourceRecord
    switch spec.codes {
    case .generated(let pattern): codes = .generated(pattern)
    case .pool: codes = .pool
    case .pregenerated(let pattern, let count):
      codes = .pregenerated(pattern, count: count)
      guard pregenerate(pattern, count: count, campaign: UInt32(state.campaigns.count), now: now)
      else {
        return .failure(
          CouponStoreError(
            code: .codeSpaceExhausted,
            message: "no \(count) unused codes of this pattern could be found; use a longer code "
              + "or a larger alphabet", field: "codes"))
      }
    }
    let record = CampaignRecord(
      id: id, name: spec.name, stock: spec.stock, startsAt: spec.startsAt.millis,
      endsAt: spec.endsAt?.millis, perUserLimit: spec.perUserLimit,
      redemptionsPerCoupon: spec.redemptionsPerCoupon, codes: codes,
      lockTimeoutMillis: Int64((spec.lockTimeout * 1000).rounded()),
      expiresAt: spec.expiresAt?.millis, createdAt: now)
    _ = log.append(type: EventType.campaignCreated.rawValue) { writer in
      EventCoder.encodeCampaign(record, into: &writer)
      EventCoder.encode(tag, into: &writer)
    }
    let index = state.applyCampaignCreated(record)
    if case .pregenerated(_, let count) = record.codes {
      let committed = state.commitPregenerated(campaign: index, count: count)
      precondition(committed, "pregenerated codes of \(id) not committed")
    }
    if let tag { state.remember(tag, .campaign(index)) }
    return .campaign(state.campaign(at: index))
  }

  // MARK: Claims

  mutating func claim(
    campaign campaignID: String, user: String?, tag: RequestTag?, now: Int64,
    prepared: PreparedClaim? = nil
  ) -> ClaimResult {
    if let tag, let remembered = state.requests[tag.id] {
      return rememberedClaim(remembered, tag: tag, campaign: campaignID, user: user)
    }
    guard let campaign = cachedCampaignID(campaignID) else {
      return reject(.campaignNotFound, tag: tag, now: now)
    }
    if let window = windowRejection(campaign, now: now) {
      return reject(window, tag: tag, now: now)
    }
    let lookedUp = user.map { state.lookUpUser($0, tag: prepared?.userTag) }
    let existingUser = lookedUp?.id
    let limit = state.campaigns[Int(campaign)].perUserLimit
    if let existingUser, state.held(by: existingUser, in: campaign) >= limit {
      return limitReached(user: existingUser, campaign: campaign, tag: tag, now: now)
    }
    // Fields are read in place: copying the CampaignState would retain (and, on the next
    // mutation, copy) its arrays.
    guard state.campaigns[Int(campaign)].issued < state.campaigns[Int(campaign)].stock,
      state.coupons.count < StringTable.countMax
    else {
      return reject(.soldOut, tag: tag, now: now)
    }
    var userID = existingUser
    if let user, userID == nil, let lookedUp {
      userID = state.insertUser(user, hash: lookedUp.hash)
    }
    let coupon: UInt32
    if state.campaigns[Int(campaign)].isPool {
      let availableCount = state.campaigns[Int(campaign)].available.count
      coupon = state.campaigns[Int(campaign)].available[random.uniform(below: availableCount)]
      _ = log.append(type: EventType.poolClaimed.rawValue) { writer in
        EventCoder.encode(
          Event.poolClaimed(
            campaign: campaign, coupon: coupon, user: user, time: now, request: tag),
          into: &writer)
      }
      state.applyPoolClaimed(coupon: coupon, user: userID, time: now)
    } else {
      guard let codeHash = takeCandidateCode(prepared) ?? generateUnusedCode(campaign) else {
        // Unreachable for a pattern with ≥ 1,000 × stock combinations unless many campaigns
        // share one small pattern; refuse rather than loop forever.
        return reject(.soldOut, tag: tag, now: now)
      }
      _ = log.append(type: EventType.claimed.rawValue) { writer in
        EventCoder.encodeClaimed(
          campaign: campaign, user: user, code: codeScratch, time: now, request: tag,
          into: &writer)
      }
      coupon = codeScratch.withUnsafeBytes {
        state.applyClaimed(
          campaign: campaign, user: userID, code: $0, codeTag: codeHash, time: now)
      }
      if let tag { state.remember(tag, .claimed(coupon)) }
      // Built from what is at hand rather than read back (``StoreState/coupon(_:)``), which
      // would decode the user id from the table again.
      return .claimed(
        Coupon(
          code: String(decoding: codeScratch, as: UTF8.self), campaign: campaignID, user: user,
          state: .assigned, issuedAt: Date(millis: now), redemptions: 0, lockExpiresAt: nil))
    }
    if let tag { state.remember(tag, .claimed(coupon)) }
    return .claimed(state.coupon(coupon))
  }

  mutating func claimCode(_ code: String, user: String?, tag: RequestTag?, now: Int64)
    -> ClaimResult
  {
    if let tag, let remembered = state.requests[tag.id] {
      let campaign = state.couponID(code: code).map {
        state.campaigns[Int(state.coupons[Int($0)].campaign)].record.id
      }
      return rememberedClaim(remembered, tag: tag, campaign: campaign ?? "", user: user)
    }
    guard let coupon = state.couponID(code: code),
      state.campaigns[Int(state.coupons[Int(coupon)].campaign)].isPool
    else {
      return reject(.codeNotFound, tag: tag, now: now)
    }
    let campaign = state.coupons[Int(coupon)].campaign
    if let window = windowRejection(campaign, now: now) {
      return reject(window, tag: tag, now: now)
    }
    let existingUser = user.flatMap { state.userID($0) }
    if state.coupons[Int(coupon)].state != .available {
      if let existingUser, state.coupons[Int(coupon)].owner == existingUser {
        // The caller already holds this very code: a retry, answered like "already claimed".
        return limitReached(user: existingUser, campaign: campaign, tag: tag, now: now)
      }
      return reject(.codeTaken, tag: tag, now: now)
    }
    let limit = state.campaigns[Int(campaign)].perUserLimit
    if let existingUser, state.held(by: existingUser, in: campaign) >= limit {
      return limitReached(user: existingUser, campaign: campaign, tag: tag, now: now)
    }
    let userID = existingUser ?? user.map { state.internUser($0) }
    _ = log.append(type: EventType.poolClaimed.rawValue) { writer in
      EventCoder.encode(
        Event.poolClaimed(campaign: campaign, coupon: coupon, user: user, time: now, request: tag),
        into: &writer)
    }
    state.applyPoolClaimed(coupon: coupon, user: userID, time: now)
    if let tag { state.remember(tag, .claimed(coupon)) }
    return .claimed(state.coupon(coupon))
  }

  mutating func cachedCampaignID(_ id: String) -> UInt32? {
    if let lastCampaign, lastCampaign.id == id { return lastCampaign.index }
    guard let index = state.campaignID(id) else { return nil }
    lastCampaign = (id, index)
    return index
  }

  private func windowRejection(_ campaign: UInt32, now: Int64) -> ClaimResult? {
    if now < state.campaigns[Int(campaign)].startsAt { return .notStarted }
    if now > state.campaigns[Int(campaign)].endsAt { return .ended }
    return nil
  }

  private mutating func limitReached(user: UInt32, campaign: UInt32, tag: RequestTag?, now: Int64)
    -> ClaimResult
  {
    let result = ClaimResult.limitReached(
      existing: state.couponIDs(of: user, in: campaign).map { state.coupon($0) })
    if let tag { record(tag, .limitReached, now: now) }
    return result
  }

  /// A rejection writes nothing, unless the request carried an id: then its answer is logged so
  /// a retry after a restart gets the same answer.
  private mutating func reject(_ result: ClaimResult, tag: RequestTag?, now: Int64) -> ClaimResult {
    if let tag, let code = OutcomeCode(result) { record(tag, code, now: now) }
    return result
  }

  private mutating func record(_ tag: RequestTag, _ code: OutcomeCode, now: Int64) {
    record(tag, outcome: code.rawValue, now: now)
  }

  /// Logs and remembers the answer given to a request id (a rejection, or a lifecycle outcome).
  mutating func record(_ tag: RequestTag, outcome: UInt8, now: Int64) {
    _ = log.append(type: EventType.requestRecorded.rawValue) { writer in
      EventCoder.encode(.requestRecorded(tag, outcome: outcome, time: now), into: &writer)
    }
    state.remember(tag, .outcome(outcome))
  }

  private func rememberedClaim(
    _ remembered: (fingerprint: UInt64, outcome: RememberedOutcome), tag: RequestTag,
    campaign: String, user: String?
  ) -> ClaimResult {
    // The fingerprint matched (``conflicting(_:)`` ran first): this is a retry.
    switch remembered.outcome {
    case .claimed(let coupon):
      return .claimed(state.coupon(coupon))
    case .outcome(let raw):
      switch OutcomeCode(rawValue: raw) {
      case .soldOut: return .soldOut
      case .notStarted: return .notStarted
      case .ended: return .ended
      case .campaignNotFound: return .campaignNotFound
      case .codeNotFound: return .codeNotFound
      case .codeTaken: return .codeTaken
      case .limitReached, nil:
        guard let user, let userID = state.userID(user), let index = state.campaignID(campaign)
        else { return .limitReached(existing: []) }
        return .limitReached(
          existing: state.couponIDs(of: userID, in: index).map { state.coupon($0) })
      }
    case .campaign, .upload:
      return .campaignNotFound
    }
  }

  /// Fills `codeScratch` with a code of the campaign's pattern that no coupon in the store has,
  /// and returns its hash (for the insertion that follows), or `nil` after too many collisions.
  private mutating func generateUnusedCode(_ campaign: UInt32) -> UInt32? {
    guard let generator = state.campaigns[Int(campaign)].generator else { return nil }
    for _ in 0..<Self.codeAttemptsMax {
      generator.generate(into: &codeScratch, random: &random)
      let unused = codeScratch.withUnsafeBytes { bytes -> UInt32? in
        let hash = StringTable.tag(bytes)
        return state.codes.find(bytes, tag: hash) == nil ? hash : nil
      }
      if let unused { return unused }
    }
    return nil
  }

  /// The error for a request id already used by a different request, if it was.
  private func conflicting(_ tag: RequestTag?) -> CouponStoreError? {
    guard let tag, let remembered = state.requests[tag.id],
      remembered.fingerprint != tag.fingerprint
    else { return nil }
    return conflict(tag)
  }

  func conflict(_ tag: RequestTag) -> CouponStoreError {
    CouponStoreError(
      code: .requestIDConflict,
      message: "request id \"\(tag.id)\" was already used for a different request; use a new id",
      field: "requestID")
  }

  // MARK: Reads

  private func read(_ read: ReadRequest) -> Reply {
    switch read {
    case .campaign(let id):
      return .optionalCampaign(state.campaignID(id).map { state.campaign(at: $0) })
    case .campaigns:
      return .campaigns((0..<state.campaigns.count).map { state.campaign(at: UInt32($0)) })
    case .claims(let id, let after, let limit):
      guard let index = state.campaignID(id) else { return .page(nil) }
      let order = state.campaigns[Int(index)].issueOrder
      let start = min(after, order.count)
      let end = min(start + limit, order.count)
      let claims = order[start..<end].map { state.claimRecord($0) }
      return .page(
        ClaimPage(claims: claims, next: end < order.count ? ClaimCursor(position: end) : nil))
    case .coupons(let user):
      guard let userID = state.userID(user) else { return .coupons([]) }
      return .coupons(state.couponIDs(of: userID).map { state.coupon($0) })
    case .coupon(let code):
      return .coupon(state.couponID(code: code).map { state.coupon($0) })
    case .couponDetails(let code):
      return .couponDetails(state.couponID(code: code).map { state.couponDetails($0) })
    case .statistics:
      var statistics = state.statistics(lastSequence: lastAppended)
      statistics.logBytes = log.totalBytes
      statistics.segments = log.segmentCount
      return .statistics(statistics)
    }
  }
}
