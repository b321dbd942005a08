// The reference model of coupon books: pool uploads, and each coupon's lifecycle (lock, unlock,
// redeem, rollback, lock expiry) with its audit trail.
//
// A coupon's lifecycle is driven by one caller only (the workload hands each coupon to one
// caller), so its transitions happen in a known order even when several callers run; what the
// model does not know with several callers is the writer's clock at each decision: only that it
// lies between the clock before the call and the clock after the answer (the callers move the
// clock forward while others' calls are in flight). The model therefore tries the few instants in
// that window where the answer can change (the lock's expiry, the campaign's expiry, the instant
// an answer names) and accepts the answer if one of them explains it; with one caller the window
// is a single instant and every answer is predicted.
//
// Lock expiry needs no event from the model: a lock that ran out at E shows as `assigned` with an
// `expired` entry stamped E from the first request at or after E on, whichever request wrote it,
// so the model settles a coupon's lock lazily, when it next looks at the coupon.

import Foundation
import Synchronization

@testable import CouponStore

/// The simulation's clock: the store's `Options.clock` reads it, the callers move it forward.
final class SimulationClock: Sendable {
  private let value: Atomic<Int64>

  init(_ millis: Int64) { value = Atomic(millis) }

  /// The current time, in milliseconds since 1970.
  var millis: Int64 { value.load(ordering: .acquiring) }

  /// Moves the clock forward.
  func advance(by millis: Int64) {
    value.add(millis, ordering: .acquiringAndReleasing)
  }

  /// Sets the clock (fail-at-N trials restart from the same instant).
  func set(_ millis: Int64) { value.store(millis, ordering: .releasing) }
}

/// The clock before a call and after its answer: the writer decided the call within it.
struct TimeWindow: Hashable, Sendable {
  var earliest: Int64
  var latest: Int64
}

/// One lock, unlock, redeem or rollback as the workload asked for it.
struct LifecycleCall: Hashable, Sendable, CustomStringConvertible {
  var action: LifecycleAction
  var code: String
  var user: String?
  var requestID: String?

  var description: String {
    "\(action)(\(code), user: \(user ?? "nil")\(requestID.map { ", id: \($0)" } ?? ""))"
  }
}

/// A lifecycle call's answer: the outcome, and the coupon a success returns.
struct LifecycleAnswer: Hashable, Sendable {
  var outcome: LifecycleOutcome
  var coupon: Coupon?

  init(_ result: LockResult) {
    switch result {
    case .locked(let coupon): (outcome, self.coupon) = (.done, coupon)
    case .notFound: outcome = .notFound
    case .alreadyLocked: outcome = .alreadyLocked
    case .fullyRedeemed: outcome = .fullyRedeemed
    case .expired: outcome = .expired
    }
  }

  init(_ result: UnlockResult) {
    switch result {
    case .unlocked(let coupon): (outcome, self.coupon) = (.done, coupon)
    case .notFound: outcome = .notFound
    case .notLocked: outcome = .notLocked
    }
  }

  init(_ result: RedeemResult) {
    switch result {
    case .redeemed(let coupon): (outcome, self.coupon) = (.done, coupon)
    case .notFound: outcome = .notFound
    case .notLocked: outcome = .notLocked
    case .fullyRedeemed: outcome = .fullyRedeemed
    case .expired: outcome = .expired
    }
  }

  init(_ result: RollbackResult) {
    switch result {
    case .rolledBack(let coupon): (outcome, self.coupon) = (.done, coupon)
    case .notFound: outcome = .notFound
    case .notRedeemed: outcome = .notRedeemed
    }
  }
}

/// One upload of pool codes as the workload made it.
struct UploadCall: Hashable, Sendable {
  var campaign: String
  /// The codes sent, in order (new ones, repeats, existing codes, malformed ones).
  var codes: [String]
  /// The codes that are new to the store: what the upload adds.
  var fresh: [String]
  var requestID: String?
}

/// One entry of a coupon's audit trail after its assignment, with when it may have happened.
struct HistoryFact: Hashable, Sendable {
  var kind: CouponEvent.Kind
  var earliest: Int64
  var latest: Int64
}

/// A coupon's lifecycle as the model knows it.
struct LifeFacts: Hashable, Sendable {
  var state: CouponState = .assigned
  var redemptions = 0
  var lockExpiresAt: Int64?
  /// The transitions after the assignment, oldest first.
  var history: [HistoryFact] = []

  /// The lock, if it ran out by `time`, has expired (as the writer does before every request).
  mutating func settle(at time: Int64) {
    guard state == .locked, let expiry = lockExpiresAt, expiry <= time else { return }
    state = .assigned
    lockExpiresAt = nil
    history.append(HistoryFact(kind: .expired, earliest: expiry, latest: expiry))
  }

  /// Whether a read's details show exactly these facts (entry times within their windows).
  func matches(_ details: CouponDetails) -> Bool {
    let coupon = details.coupon
    guard coupon.state == state, coupon.redemptions == redemptions,
      coupon.lockExpiresAt?.millis == lockExpiresAt,
      details.history.first?.kind == .assigned, details.history.count == history.count + 1
    else { return false }
    return zip(details.history.dropFirst(), history).allSatisfy { entry, fact in
      entry.kind == fact.kind && (fact.earliest...fact.latest).contains(entry.time.millis)
        && entry.user == coupon.user
    }
  }

  /// The facts a read shows (entry times exact).
  init(_ details: CouponDetails) {
    state = details.coupon.state
    redemptions = details.coupon.redemptions
    lockExpiresAt = details.coupon.lockExpiresAt?.millis
    history = details.history.dropFirst().map {
      HistoryFact(kind: $0.kind, earliest: $0.time.millis, latest: $0.time.millis)
    }
  }

  init() {}
}

/// What the model knows of coupon books.
struct BookFacts {
  /// Lifecycles of coupons that had a lifecycle call answered (others are plainly assigned).
  var lives: [String: LifeFacts] = [:]
  /// Answers to lifecycle request ids, as acknowledged.
  var requests: [String: (call: LifecycleCall, outcome: LifecycleOutcome)] = [:]
  /// Lifecycle calls whose fate is unknown, with the clock when each was made.
  var pendingLifecycle: [(call: LifecycleCall, earliest: Int64)] = []
  /// Acknowledged pool codes and their campaign (available or claimed).
  var pool: [String: String] = [:]
  /// Acknowledged uploads with a request id, for retries.
  var uploads: [String: UploadCall] = [:]
  /// Uploads whose fate is unknown: each happened whole or not at all.
  var pendingUploads: [UploadCall] = []
}

extension SimulationModel {
  // MARK: Lifecycle rules

  /// The lifecycle of an issued coupon the model knows, `nil` for any other code.
  func life(of code: String) -> LifeFacts? {
    coupons[code] == nil ? nil : books.lives[code] ?? LifeFacts()
  }

  /// The outcome of `call` decided at exactly `time`, and the coupon's facts afterwards; the new
  /// audit entry (if any) is dated `window` (with one caller, `time` itself).
  func decide(_ call: LifecycleCall, at time: Int64, window: TimeWindow)
    -> (outcome: LifecycleOutcome, life: LifeFacts?)
  {
    guard let owner = coupons[call.code], owner.user == call.user, var life = life(of: call.code),
      let campaign = campaigns[owner.campaign]
    else { return (.notFound, life(of: call.code)) }
    life.settle(at: time)
    let campaignExpired = campaign.expiresAt.map { time > $0 } ?? false
    var entry = HistoryFact(kind: .locked, earliest: window.earliest, latest: window.latest)
    switch call.action {
    case .lock:
      if life.state == .redeemed { return (.fullyRedeemed, life) }
      if campaignExpired { return (.expired, life) }
      if life.state == .locked { return (.alreadyLocked, life) }
      life.state = .locked
      life.lockExpiresAt = time + campaign.lockTimeoutMillis
      entry = HistoryFact(kind: .locked, earliest: time, latest: time)
    case .unlock:
      guard life.state == .locked else { return (.notLocked, life) }
      life.state = .assigned
      life.lockExpiresAt = nil
      entry.kind = .unlocked
    case .redeem:
      if life.state == .redeemed { return (.fullyRedeemed, life) }
      if campaignExpired { return (.expired, life) }
      guard life.state == .locked else { return (.notLocked, life) }
      life.redemptions += 1
      life.state = life.redemptions >= campaign.redemptionsPerCoupon ? .redeemed : .assigned
      life.lockExpiresAt = nil
      entry.kind = .redeemed
    case .rollback:
      guard life.redemptions > 0 else { return (.notRedeemed, life) }
      life.redemptions -= 1
      if life.state == .redeemed { life.state = .assigned }
      entry.kind = .rolledBack
    }
    life.history.append(entry)
    return (.done, life)
  }

  /// The instants in `window` at which a decision about `code` can differ: its ends, the lock's
  /// expiry, the campaign's expiry, and `extra` (instants an answer or a read names).
  func decisionTimes(_ code: String, _ window: TimeWindow, extra: [Int64] = []) -> [Int64] {
    var times = [window.earliest, window.latest] + extra
    if let expiry = books.lives[code]?.lockExpiresAt { times += [expiry - 1, expiry] }
    if let campaign = coupons[code].flatMap({ campaigns[$0.campaign] }) {
      if let expiresAt = campaign.expiresAt { times += [expiresAt, expiresAt + 1] }
      // The lock an answer or read names was taken at its expiry minus the timeout.
      times += extra.map { $0 - campaign.lockTimeoutMillis }
    }
    return Set(times.filter { (window.earliest...window.latest).contains($0) }).sorted()
  }

  /// Learns an acknowledged lifecycle answer; returns why it is impossible, if it is.
  mutating func learnLifecycle(
    _ call: LifecycleCall, _ answer: LifecycleAnswer, _ window: TimeWindow
  ) -> [String] {
    if let id = call.requestID, let remembered = books.requests[id] {
      if remembered.outcome != answer.outcome {
        return ["retry of \(call) answered \(answer.outcome), first answer \(remembered.outcome)"]
      }
      if let coupon = answer.coupon, coupon.code != call.code {
        return ["retry of \(call) returned coupon \(coupon.code)"]
      }
      return []
    }
    let extra = answer.coupon?.lockExpiresAt.map { [$0.millis] } ?? []
    for time in decisionTimes(call.code, window, extra: extra) {
      let (outcome, life) = decide(call, at: time, window: window)
      guard outcome == answer.outcome else { continue }
      if let coupon = answer.coupon {
        guard let life, coupon.code == call.code, coupon.state == life.state,
          coupon.redemptions == life.redemptions,
          coupon.lockExpiresAt?.millis == life.lockExpiresAt,
          coupon.user == call.user
        else { continue }
      }
      if outcome == .done, let life { books.lives[call.code] = life }
      if let id = call.requestID { books.requests[id] = (call, outcome) }
      return []
    }
    let expected = decide(call, at: window.earliest, window: window)
    return [
      "\(call) at \(window.earliest)…\(window.latest) answered \(answer.outcome)"
        + "\(answer.coupon.map { " \($0.state), \($0.redemptions) redemptions" } ?? ""), "
        + "the model expected \(expected.outcome) (coupon \(expected.life.map(String.init(describing:)) ?? "unknown"))"
    ]
  }

  /// Whether a read of `code` at `time` shows what the model holds (one caller).
  func lifeMismatch(_ code: String, _ details: CouponDetails?, at time: Int64) -> String? {
    guard var life = life(of: code) else {
      if let details, details.coupon.state != .available || books.pool[code] == nil {
        return "couponDetails(\(code)) found \(details.coupon), unknown to the model"
      }
      return nil
    }
    life.settle(at: time)
    guard let details else { return "couponDetails(\(code)) found nothing, the model has \(life)" }
    if details.coupon.user != coupons[code]?.user || !life.matches(details) {
      return "couponDetails(\(code)) at \(time) shows \(details.coupon.state), "
        + "\(details.coupon.redemptions) redemptions, history \(details.history.map(\.kind)); "
        + "the model has \(life)"
    }
    return nil
  }

  // MARK: Uploads

  /// The answer an upload must get: the new codes are added, the rest refused with their reason.
  static func expectedRejections(_ call: UploadCall) -> [AddCodesResult.Rejection] {
    var seen: Set<String> = []
    let fresh = Set(call.fresh)
    var rejections: [AddCodesResult.Rejection] = []
    for code in call.codes {
      if code.isEmpty {
        rejections.append(.init(code: code, reason: .empty))
      } else if !fresh.contains(code) {
        rejections.append(.init(code: code, reason: .alreadyExists))
      } else if !seen.insert(code).inserted {
        rejections.append(.init(code: code, reason: .duplicateInUpload))
      }
    }
    return rejections
  }

  mutating func learnUpload(_ call: UploadCall, _ result: AddCodesResult) -> [String] {
    if let id = call.requestID, books.uploads[id] != nil {
      // A retry adds nothing and refuses only the malformed codes.
      let malformed = call.codes.filter(\.isEmpty).map {
        AddCodesResult.Rejection(code: $0, reason: .empty)
      }
      if result != AddCodesResult(added: 0, rejected: malformed) {
        return ["retry of upload \(id) answered \(result)"]
      }
      return []
    }
    let expected = AddCodesResult(
      added: Set(call.fresh).count, rejected: Self.expectedRejections(call))
    for code in Set(call.fresh) { books.pool[code] = call.campaign }
    campaigns[call.campaign]?.stock += result.added
    if let id = call.requestID { books.uploads[id] = call }
    return result == expected
      ? []
      : ["upload of \(call.codes) to \(call.campaign) answered \(result), expected \(expected)"]
  }

  /// The answer a claim of the named pool code must get at `now`; `nil`: that coupon, new.
  func expectedCodeClaim(_ code: String, user: String?, now: Int64) -> ClaimOutcome? {
    guard let campaignID = books.pool[code], let campaign = campaigns[campaignID] else {
      return .rejected("codeNotFound")
    }
    if now < campaign.startsAt { return .rejected("notStarted") }
    if let endsAt = campaign.endsAt, now > endsAt { return .rejected("ended") }
    if let holder = coupons[code] {
      return user != nil && holder.user == user ? .rejected("limitReached") : .rejected("codeTaken")
    }
    if let user, held(by: user, in: campaignID).count >= campaign.perUserLimit {
      return .rejected("limitReached")
    }
    return nil
  }

  // MARK: Checking a recovered store

  /// The codes whose details the model checks after a recovery.
  var trackedCodes: [String] {
    var codes = Set(books.lives.keys).union(books.pool.keys)
    codes.formUnion(books.pendingLifecycle.map(\.call.code))
    for upload in books.pendingUploads { codes.formUnion(upload.fresh) }
    return codes.sorted()
  }

  /// Every way the books of `observed` contradict the model.
  func bookViolations(of observed: ObservedState, lossy: Bool) -> [String] {
    var problems: [String] = []
    let time = observed.time
    // Acknowledged pool codes are all there, in their campaign.
    for (code, campaign) in books.pool.sorted(by: { $0.key < $1.key }) {
      guard let details = observed.details[code] else {
        if !lossy { problems.append("acknowledged pool code \(code) is missing") }
        continue
      }
      if details.coupon.campaign != campaign {
        problems.append(
          "pool code \(code) is in \(details.coupon.campaign), uploaded to \(campaign)")
      }
    }
    // An upload in flight happened whole or not at all; a pool's size is what was uploaded.
    var appliedCodes: [String: Int] = [:]
    var uploadedCodes = Set(books.pool.keys)
    for upload in books.pendingUploads {
      let fresh = Set(upload.fresh)
      let present = fresh.filter { observed.details[$0]?.coupon.campaign == upload.campaign }
      if !present.isEmpty && present.count != fresh.count {
        problems.append(
          "an upload in flight to \(upload.campaign) is half there: \(present.count) of "
            + "\(fresh.count) codes")
      }
      if present.count == fresh.count { appliedCodes[upload.campaign, default: 0] += fresh.count }
      uploadedCodes.formUnion(present)
    }
    for campaign in observed.campaigns where campaign.codes == .pool {
      guard let facts = campaigns[campaign.id] else { continue }
      let expected = facts.stock + (appliedCodes[campaign.id] ?? 0)
      if !lossy && campaign.stock != expected {
        problems.append(
          "pool \(campaign.id) holds \(campaign.stock) codes, uploads explain \(expected)")
      }
      for claim in observed.claims[campaign.id] ?? [] where !uploadedCodes.contains(claim.code) {
        problems.append("pool \(campaign.id) issued \(claim.code), which was never uploaded")
      }
    }
    // Every tracked coupon's lifecycle: the acknowledged one, or the one an in-flight call made.
    var tracked: Set<String> = []
    for code in trackedCodes where coupons[code] != nil || observed.coupons[code] != nil {
      tracked.insert(code)
      guard let details = observed.details[code] else {
        if !lossy { problems.append("coupon \(code) is missing from couponDetails") }
        continue
      }
      if lossy {
        problems += Self.lifecycleInvariants(details, campaigns: observed.campaigns)
        continue
      }
      if !lifeExplained(code, details, at: time) {
        problems.append(
          "coupon \(code) lost or changed an acknowledged transition: it shows \(details.coupon.state), \(details.coupon.redemptions) "
            + "redemptions, lock until \(details.coupon.lockExpiresAt?.millis ?? 0), history "
            + "\(details.history.map { "\($0.kind)@\($0.time.millis)" }); acknowledged: "
            + "\(life(of: code).map(String.init(describing:)) ?? "none"), in flight: "
            + "\(books.pendingLifecycle.filter { $0.call.code == code }.map(\.call))")
      }
    }
    // Coupons nobody locked, redeemed or rolled back are plainly assigned.
    for (user, held) in observed.userCoupons.sorted(by: { $0.key < $1.key }) {
      for coupon in held where !tracked.contains(coupon.code) {
        if coupon.state != .assigned || coupon.redemptions != 0 || coupon.lockExpiresAt != nil {
          problems.append(
            "\(user)'s coupon \(coupon.code) is \(coupon.state), but no call touched it")
        }
      }
    }
    var touched: [String: Int] = [:]
    for code in tracked {
      if let details = observed.details[code], [.locked, .redeemed].contains(details.coupon.state) {
        touched[details.coupon.campaign, default: 0] += 1
      }
    }
    for (campaign, states) in observed.couponStates.sorted(by: { $0.key < $1.key }) {
      let count = (states[.locked] ?? 0) + (states[.redeemed] ?? 0)
      if count != (touched[campaign] ?? 0) {
        problems.append(
          "campaign \(campaign) has \(count) locked or redeemed coupons, calls explain "
            + "\(touched[campaign] ?? 0)")
      }
    }
    return problems
  }

  /// Whether the details of `code`, read at `time`, follow from the acknowledged lifecycle, with
  /// or without the coupon's in-flight call (made at some instant before `time`).
  func lifeExplained(_ code: String, _ details: CouponDetails, at time: Int64) -> Bool {
    // A coupon the model does not know came from a claim in flight: plainly assigned.
    guard let base = life(of: code) ?? (details.history.count <= 1 ? LifeFacts() : nil) else {
      return false
    }
    var settled = base
    settled.settle(at: time)
    if settled.matches(details) { return true }
    let named = details.history.map(\.time.millis) + [details.coupon.lockExpiresAt?.millis ?? 0]
    for (call, earliest) in books.pendingLifecycle where call.code == code {
      let window = TimeWindow(earliest: earliest, latest: time)
      for instant in decisionTimes(code, window, extra: named) {
        guard case (.done, var after?) = decide(call, at: instant, window: window) else { continue }
        after.settle(at: time)
        if after.matches(details) { return true }
      }
    }
    return false
  }

  /// A recovered coupon's own consistency (after a lossy recovery, when exactness is not owed).
  static func lifecycleInvariants(_ details: CouponDetails, campaigns: [Campaign]) -> [String] {
    let coupon = details.coupon
    var problems: [String] = []
    let net =
      details.history.filter { $0.kind == .redeemed }.count
      - details.history.filter { $0.kind == .rolledBack }.count
    if net != coupon.redemptions || coupon.redemptions > details.redemptionsMax
      || (coupon.state == .redeemed) != (coupon.redemptions == details.redemptionsMax)
      || (coupon.state == .locked) != (coupon.lockExpiresAt != nil)
    {
      problems.append("coupon \(coupon.code) is inconsistent: \(details)")
    }
    if !campaigns.contains(where: { $0.id == coupon.campaign }) {
      problems.append("coupon \(coupon.code) belongs to a campaign that does not exist")
    }
    return problems
  }

  /// Adopts the recovered books: every tracked coupon's lifecycle is what the store shows.
  mutating func resolveBooks(_ observed: ObservedState, lossy: Bool) {
    var pool: [String: String] = [:]
    for code in Set(books.pool.keys).union(books.pendingUploads.flatMap(\.fresh)) {
      if let details = observed.details[code] { pool[code] = details.coupon.campaign }
    }
    books.pool = pool
    var lives: [String: LifeFacts] = [:]
    for code in Set(books.lives.keys).union(books.pendingLifecycle.map(\.call.code)) {
      guard coupons[code] != nil, let details = observed.details[code] else { continue }
      lives[code] = LifeFacts(details)
    }
    books.lives = lives
    books.pendingLifecycle = []
    books.pendingUploads = []
    if lossy {
      // A salvage may have cut acknowledged answers: their retries would be decided afresh.
      books.requests = [:]
      books.uploads = [:]
    }
  }
}
