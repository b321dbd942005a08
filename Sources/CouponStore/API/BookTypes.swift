// Public values of coupon books: the outcomes of lock, unlock, redeem and rollback, a coupon's
// audit trail, and upload progress.
//
// Every rejection is a value named for the rule that held. A code that does not exist and a code
// that belongs to someone else share one value, `notFound`, in every enum, so that no caller can
// probe for other users' codes.

import Foundation

/// The outcome of ``CouponStore/lock(code:user:requestID:)``.
public enum LockResult: Sendable, Hashable {
  /// The coupon is locked for its owner until ``Coupon/lockExpiresAt``; durable when the call
  /// returns.
  case locked(Coupon)
  /// No coupon has this code, or it is not assigned to this user (the same answer for both).
  case notFound
  /// The coupon is already locked (by its owner: nobody else can lock it), and the lock is live.
  case alreadyLocked
  /// The coupon was redeemed as many times as its campaign allows.
  case fullyRedeemed
  /// The campaign's `expiresAt` has passed: its coupons can no longer be locked or redeemed.
  case expired

  /// The locked coupon, if this is ``locked(_:)``.
  public var coupon: Coupon? {
    if case .locked(let coupon) = self { return coupon }
    return nil
  }
}

/// The outcome of ``CouponStore/unlock(code:user:requestID:)``.
public enum UnlockResult: Sendable, Hashable {
  /// The lock was released; the coupon is `assigned` again. Durable when the call returns.
  case unlocked(Coupon)
  /// No coupon has this code, or it is not assigned to this user (the same answer for both).
  case notFound
  /// The coupon holds no live lock (never locked, already unlocked or redeemed, or the lock
  /// expired).
  case notLocked

  /// The unlocked coupon, if this is ``unlocked(_:)``.
  public var coupon: Coupon? {
    if case .unlocked(let coupon) = self { return coupon }
    return nil
  }
}

/// The outcome of ``CouponStore/redeem(code:user:requestID:)``.
public enum RedeemResult: Sendable, Hashable {
  /// The coupon was redeemed once more: it is `redeemed` after its last allowed redemption and
  /// `assigned` before (multi-redemption). Durable when the call returns.
  case redeemed(Coupon)
  /// No coupon has this code, or it is not assigned to this user (the same answer for both).
  case notFound
  /// Redeeming needs the owner's live lock; the coupon has none (never locked, unlocked, or the
  /// lock expired).
  case notLocked
  /// The coupon was redeemed as many times as its campaign allows.
  case fullyRedeemed
  /// The campaign's `expiresAt` has passed.
  case expired

  /// The redeemed coupon, if this is ``redeemed(_:)``.
  public var coupon: Coupon? {
    if case .redeemed(let coupon) = self { return coupon }
    return nil
  }
}

/// The outcome of ``CouponStore/rollback(code:user:requestID:)``.
public enum RollbackResult: Sendable, Hashable {
  /// One redemption was taken back (a refund, a failed payment): the redemption count dropped by
  /// one and a fully redeemed coupon is `assigned` again. Durable when the call returns.
  case rolledBack(Coupon)
  /// No coupon has this code, or it is not assigned to this user (the same answer for both).
  case notFound
  /// The coupon has no redemption to roll back.
  case notRedeemed

  /// The coupon after the rollback, if this is ``rolledBack(_:)``.
  public var coupon: Coupon? {
    if case .rolledBack(let coupon) = self { return coupon }
    return nil
  }
}

/// One entry of a coupon's audit trail.
public struct CouponEvent: Sendable, Hashable {
  /// What happened to the coupon.
  public enum Kind: String, Sendable, Hashable, CustomStringConvertible {
    /// Given to its user (or issued anonymously) by a claim.
    case assigned
    /// Locked by its owner for a checkout.
    case locked
    /// Unlocked by its owner.
    case unlocked
    /// Its lock ran out (`lockTimeout` passed without a redemption or an unlock).
    case expired
    /// Redeemed once.
    case redeemed
    /// One redemption was rolled back.
    case rolledBack

    /// The kind's name.
    public var description: String { rawValue }
  }

  /// What happened.
  public var kind: Kind
  /// When (the store's clock; for ``Kind/expired``, the instant the lock ran out).
  public var time: Date
  /// The coupon's owner, who made the call; `nil` for an anonymously issued coupon.
  public var user: String?
}

/// A coupon with its full audit trail, from ``CouponStore/couponDetails(code:)``.
public struct CouponDetails: Sendable, Hashable {
  /// The coupon: code, campaign, owner, state, redemption count, lock expiry.
  public var coupon: Coupon
  /// How many times the campaign lets one coupon be redeemed.
  public var redemptionsMax: Int
  /// Every transition, oldest first: the assignment, then each lock, unlock, lock expiry,
  /// redemption and rollback. Empty while the coupon is available in its pool.
  public var history: [CouponEvent]
}

/// How far an upload of pool codes has come, reported to the `progress` closure of
/// ``CouponStore/addCodes(_:to:requestID:progress:)``.
public struct AddCodesProgress: Sendable, Hashable {
  /// Codes checked and written to the log so far (durably staged; they become visible together
  /// when the upload's last chunk is written).
  public var codesDone: Int
  /// Codes in the upload.
  public var codesTotal: Int
}
