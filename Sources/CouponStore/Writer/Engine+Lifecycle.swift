// The lifecycle decisions: lock, unlock, redeem, rollback, and lock expiry.
//
// Each call names a code and a user. The writer first checks ownership (only the coupon's owner
// may act on it; an anonymously issued coupon is acted on with `user: nil`, as a bearer coupon),
// answering `notFound` for an unknown code and for someone else's code alike, then the rules of
// ``StoreState/lifecycleRefusal(_:coupon:time:)``, which replay checks again.
//
// Lock expiry is decided against the batch clock, the same `now` every event of the batch is
// stamped with: at the start of every request the writer expires each lock that is due and logs
// a `lockExpired` event for it, so replay never consults a clock and agrees exactly.
//
// Durability: as for every write, nothing here is durable; the caller's reply is released after
// the `fdatasync` that covers its event (see Engine.swift).

import CouponLog

/// A lifecycle call, validated by the caller's task.
struct LifecycleRequest: Sendable {
  var action: LifecycleAction
  var code: String
  var user: String?
  var tag: RequestTag?
}

extension Engine {
  /// Decides a lock, unlock, redeem or rollback.
  mutating func lifecycle(_ request: LifecycleRequest, now: Int64) -> Reply {
    if let tag = request.tag, let remembered = state.requests[tag.id] {
      guard remembered.fingerprint == tag.fingerprint else { return .failure(conflict(tag)) }
      // A retry: the first answer, with the coupon as it is now.
      guard case .outcome(let raw) = remembered.outcome,
        let outcome = LifecycleOutcome(rawValue: raw)
      else { return .lifecycle(.notFound, nil) }
      let coupon =
        outcome == .done ? state.couponID(code: request.code).map { state.coupon($0) } : nil
      return .lifecycle(outcome, coupon)
    }
    guard let coupon = state.couponID(code: request.code), owns(coupon, request.user) else {
      return refuse(.notFound, tag: request.tag, now: now)
    }
    if let refusal = state.lifecycleRefusal(request.action, coupon: coupon, time: now) {
      return refuse(refusal, tag: request.tag, now: now)
    }
    let tag = request.tag
    switch request.action {
    case .lock:
      let campaign = state.coupons[Int(coupon)].campaign
      // Both are clamped (times to ±9e15 ms, timeouts to a year), so the sum cannot overflow.
      let expiresAt = now + state.campaigns[Int(campaign)].record.lockTimeoutMillis
      append(.locked(coupon: coupon, time: now, expiresAt: expiresAt, request: tag))
      state.applyLocked(coupon: coupon, time: now, expiresAt: expiresAt)
      lockQueue.insert(LockExpiryQueue.Entry(expiresAt: expiresAt, coupon: coupon))
      if lockQueue.count > 2 * state.lockExpiry.count + Self.lockQueueSlack {
        lockQueue = LockExpiryQueue(state.lockExpiry)
      }
    case .unlock:
      append(.unlocked(coupon: coupon, time: now, request: tag))
      state.applyLockReleased(coupon: coupon, entry: .unlocked, time: now)
    case .redeem:
      append(.redeemed(coupon: coupon, time: now, request: tag))
      state.applyRedeemed(coupon: coupon, time: now)
    case .rollback:
      append(.rolledBack(coupon: coupon, time: now, request: tag))
      state.applyRolledBack(coupon: coupon, time: now)
    }
    if let tag { state.remember(tag, .outcome(LifecycleOutcome.done.rawValue)) }
    return .lifecycle(.done, state.coupon(coupon))
  }

  /// Stale entries the lock queue may hold beyond twice the live locks before it is rebuilt.
  static let lockQueueSlack = 1024

  /// Expires every lock due at `now`, logging a `lockExpired` event (stamped with the instant
  /// the lock ran out) for each. Called at the start of every request: one comparison when
  /// nothing is due.
  mutating func expireLocks(now: Int64) {
    while let due = lockQueue.first, due.expiresAt <= now {
      lockQueue.removeFirst()
      // Skip an entry whose lock ended early (unlock, redemption) or was replaced.
      guard state.lockExpiry[due.coupon] == due.expiresAt else { continue }
      append(.lockExpired(coupon: due.coupon, time: due.expiresAt))
      state.applyLockReleased(coupon: due.coupon, entry: .expired, time: due.expiresAt)
    }
  }

  /// Whether `user` may act on `coupon`: it is the coupon's owner, or both are "nobody" (an
  /// anonymously issued coupon, or an available one, which the rules then refuse).
  private func owns(_ coupon: UInt32, _ user: String?) -> Bool {
    let owner = state.coupons[Int(coupon)].owner
    guard let user else { return owner == CouponRecord.none }
    return owner != CouponRecord.none && state.userID(user) == owner
  }

  /// A refusal writes nothing, unless the request carried an id (as for claims), whose answer must survive a restart.
  private mutating func refuse(_ outcome: LifecycleOutcome, tag: RequestTag?, now: Int64) -> Reply {
    if let tag { record(tag, outcome: outcome.rawValue, now: now) }
    return .lifecycle(outcome, nil)
  }

  /// Logs one event into the current batch.
  func append(_ event: Event) {
    log.append(type: event.type.rawValue) { EventCoder.encode(event, into: &$0) }
  }
}
