// The coupon lifecycle in the state: its rules, its transitions, and its replay.
//
//   available ──claim──▶ assigned ──lock──▶ locked ──redeem, the last allowed──▶ redeemed
//                         ▲    ▲              │                                    │
//                         │    └──────────────┘ unlock · lock expiry ·             │
//                         │                     redeem, not the last allowed       │
//                         └────────────────────────────────────────────────────────┘ rollback
//
// The rules (``StoreState/lifecycleRefusal(_:coupon:time:)``) are one function used by the writer
// to decide and by replay to check, and the transitions are `apply…` functions used by both, so
// the two cannot drift apart. Ownership is the writer's check alone: events name the coupon, and
// the coupon names its owner.

import CouponLog
import Foundation

/// A lifecycle call.
enum LifecycleAction: UInt8, Sendable, CustomStringConvertible {
  case lock, unlock, redeem, rollback

  var description: String {
    switch self {
    case .lock: "lock"
    case .unlock: "unlock"
    case .redeem: "redeem"
    case .rollback: "rollback"
    }
  }
}

/// Stable codes of lifecycle outcomes, remembered for request ids (stored in `requestRecorded`
/// events: never renumber). They start at 100, above the claim outcomes of ``OutcomeCode``.
enum LifecycleOutcome: UInt8, Sendable {
  /// The call succeeded (which call it was, the request's fingerprint says).
  case done = 100
  case notFound = 101
  case alreadyLocked = 102
  case notLocked = 103
  case fullyRedeemed = 104
  case expired = 105
  case notRedeemed = 106
}

extension StoreState {
  // MARK: Rules

  /// Why `action` on `coupon` at `time` is refused, or `nil` if it is allowed. The caller has
  /// checked that the coupon exists and belongs to the caller. Expired locks must have been
  /// expired before (the writer does so at the start of every request), so a `locked` coupon
  /// holds a live lock.
  func lifecycleRefusal(_ action: LifecycleAction, coupon: UInt32, time: Int64)
    -> LifecycleOutcome?
  {
    let record = coupons[Int(coupon)]
    if record.state == .available { return .notFound }
    let campaign = campaigns[Int(record.campaign)].record
    let campaignExpired = campaign.expiresAt.map { time > $0 } ?? false
    switch action {
    case .lock:
      if record.state == .redeemed { return .fullyRedeemed }
      if campaignExpired { return .expired }
      if record.state == .locked { return .alreadyLocked }
      return nil
    case .unlock:
      return record.state == .locked ? nil : .notLocked
    case .redeem:
      if record.state == .redeemed { return .fullyRedeemed }
      if campaignExpired { return .expired }
      return record.state == .locked ? nil : .notLocked
    case .rollback:
      return record.redemptions > 0 ? nil : .notRedeemed
    }
  }

  // MARK: Transitions shared by the writer and replay

  /// `assigned → locked` until `expiresAt`.
  mutating func applyLocked(coupon: UInt32, time: Int64, expiresAt: Int64) {
    applyTransition(coupon: coupon, to: .locked, entry: .locked, time: time)
    lockExpiry[coupon] = expiresAt
  }

  /// `locked → assigned`, by the owner (`unlocked`) or because the lock ran out (`expired`).
  mutating func applyLockReleased(coupon: UInt32, entry: HistoryEntry.Kind, time: Int64) {
    precondition(
      coupons[Int(coupon)].state == .locked, "coupon \(coupon) released while not locked")
    lockExpiry[coupon] = nil
    applyTransition(coupon: coupon, to: .assigned, entry: entry, time: time)
  }

  /// `locked → redeemed` on the last allowed redemption, `locked → assigned` before it.
  mutating func applyRedeemed(coupon: UInt32, time: Int64) {
    precondition(
      coupons[Int(coupon)].state == .locked, "coupon \(coupon) redeemed while not locked")
    lockExpiry[coupon] = nil
    coupons[Int(coupon)].redemptions += 1
    let allowed = campaigns[Int(coupons[Int(coupon)].campaign)].record.redemptionsPerCoupon
    let last = Int(coupons[Int(coupon)].redemptions) >= allowed
    applyTransition(coupon: coupon, to: last ? .redeemed : .assigned, entry: .redeemed, time: time)
  }

  /// Takes one redemption back: a `redeemed` coupon is `assigned` again; an `assigned` or
  /// `locked` one (multi-redemption) keeps its state, and a live lock stays.
  mutating func applyRolledBack(coupon: UInt32, time: Int64) {
    precondition(coupons[Int(coupon)].redemptions > 0, "coupon \(coupon) has nothing to roll back")
    coupons[Int(coupon)].redemptions -= 1
    let state = coupons[Int(coupon)].state
    applyTransition(
      coupon: coupon, to: state == .redeemed ? .assigned : state, entry: .rolledBack, time: time)
  }

  // MARK: Replay

  /// Replays a lifecycle event, after checking it against the same rules the writer decided by.
  mutating func replayLifecycle(_ event: Event) throws {
    switch event {
    case .locked(let coupon, let time, let expiresAt, let request):
      try checkLifecycle(.lock, coupon: coupon, time: time)
      guard expiresAt > time else {
        throw ReplayError(reason: "lock of coupon \(coupon) expires before it was taken")
      }
      applyLocked(coupon: coupon, time: time, expiresAt: expiresAt)
      if let request { remember(request, .outcome(LifecycleOutcome.done.rawValue)) }
    case .unlocked(let coupon, let time, let request):
      try checkLifecycle(.unlock, coupon: coupon, time: time)
      applyLockReleased(coupon: coupon, entry: .unlocked, time: time)
      if let request { remember(request, .outcome(LifecycleOutcome.done.rawValue)) }
    case .lockExpired(let coupon, let time):
      guard coupon < UInt32(coupons.count), let expiry = lockExpiry[coupon], time >= expiry else {
        throw ReplayError(reason: "expiry of coupon \(coupon), which holds no lock due by then")
      }
      applyLockReleased(coupon: coupon, entry: .expired, time: time)
    case .redeemed(let coupon, let time, let request):
      try checkLifecycle(.redeem, coupon: coupon, time: time)
      guard let expiry = lockExpiry[coupon], time < expiry else {
        throw ReplayError(reason: "redemption of coupon \(coupon) under an expired lock")
      }
      applyRedeemed(coupon: coupon, time: time)
      if let request { remember(request, .outcome(LifecycleOutcome.done.rawValue)) }
    case .rolledBack(let coupon, let time, let request):
      try checkLifecycle(.rollback, coupon: coupon, time: time)
      applyRolledBack(coupon: coupon, time: time)
      if let request { remember(request, .outcome(LifecycleOutcome.done.rawValue)) }
    case .campaignCreated, .claimed, .codesAdded, .poolClaimed, .requestRecorded:
      preconditionFailure("replayLifecycle called with \(event.type)")
    }
  }

  private func checkLifecycle(_ action: LifecycleAction, coupon: UInt32, time: Int64) throws {
    guard coupon < UInt32(coupons.count) else {
      throw ReplayError(reason: "\(action) of unknown coupon \(coupon)")
    }
    if let refusal = lifecycleRefusal(action, coupon: coupon, time: time) {
      throw ReplayError(reason: "\(action) of coupon \(coupon) breaks a rule (\(refusal))")
    }
  }

  // MARK: Read model

  /// A coupon with its audit trail: the assignment (from the coupon itself), then every
  /// lifecycle transition in order.
  func couponDetails(_ id: UInt32) -> CouponDetails {
    let record = coupons[Int(id)]
    let owner = record.owner == CouponRecord.none ? nil : users.string(of: record.owner)
    var events: [CouponEvent] = []
    if record.state != .available {
      events.append(CouponEvent(kind: .assigned, time: Date(millis: record.issuedAt), user: owner))
    }
    for entry in history[id] ?? [] {
      let kind: CouponEvent.Kind =
        switch entry.kind {
        case .locked: .locked
        case .unlocked: .unlocked
        case .expired: .expired
        case .redeemed: .redeemed
        case .rolledBack: .rolledBack
        }
      events.append(
        CouponEvent(
          kind: kind, time: Date(millis: entry.time),
          user: entry.user == CouponRecord.none ? nil : users.string(of: entry.user)))
    }
    return CouponDetails(
      coupon: coupon(id),
      redemptionsMax: campaigns[Int(record.campaign)].record.redemptionsPerCoupon,
      history: events)
  }

  // MARK: Invariants

  /// Broken lifecycle invariants, described (for `verify` and tests): a lock expiry exactly for
  /// the locked coupons, redemption counts within the campaign's allowance and matching the
  /// audit trail, and `redeemed` exactly when the allowance is used up.
  func lifecycleViolations() -> [String] {
    var problems: [String] = []
    var locked = 0
    for (index, record) in coupons.enumerated()
    where !record.isStaged && Int(record.campaign) < campaigns.count {
      let id = UInt32(index)
      let code = codes.string(of: id)
      let allowed = campaigns[Int(record.campaign)].record.redemptionsPerCoupon
      if record.state == .locked {
        locked += 1
        if lockExpiry[id] == nil { problems.append("coupon \(code) is locked without an expiry") }
      }
      if Int(record.redemptions) > allowed {
        problems.append("coupon \(code) redeemed \(record.redemptions) times, allowed \(allowed)")
      }
      if (record.state == .redeemed) != (Int(record.redemptions) == allowed) {
        problems.append(
          "coupon \(code) is \(record.state) with \(record.redemptions) of \(allowed) redemptions")
      }
      let trail = history[id] ?? []
      let net =
        trail.filter { $0.kind == .redeemed }.count - trail.filter { $0.kind == .rolledBack }.count
      if net != Int(record.redemptions) {
        problems.append("coupon \(code): audit trail disagrees with its redemption count")
      }
    }
    if locked != lockExpiry.count {
      problems.append("\(lockExpiry.count) lock expiries for \(locked) locked coupons")
    }
    return problems
  }
}
