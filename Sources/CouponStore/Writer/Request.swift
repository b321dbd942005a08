// What callers hand to the writer thread, and what it hands back.

import Foundation

/// A request to the writer. Arguments are validated by the caller's task before enqueueing, so
/// the writer only decides; a request with a tag carries its idempotency key and fingerprint.
///
/// The rare, large cases are `indirect` (boxed), so that a request is as small as a claim: every
/// request is moved through the queue and the batch arrays, and a 200-byte enum would cost more
/// copying than the claim's decision.
enum Request: Sendable {
  indirect case createCampaign(CampaignSpec, RequestTag?)
  case claim(campaign: String, user: String?, RequestTag?)
  case claimCode(code: String, user: String?, RequestTag?)
  case claimBatch([(campaign: String, user: String?, tag: RequestTag?)])
  indirect case lifecycle(LifecycleRequest)
  indirect case addCodes(UploadChunk)
  case read(ReadRequest)
  /// Take a snapshot now: handled by the writer thread itself (it seals the log and hands the
  /// boundary to the snapshotter, which answers once the snapshot is durable).
  case snapshot
  case close
}

/// Reads go through the writer's queue like writes: the writer answers from its state at the
/// request's position in the order, and the answer is delivered only once every event decided
/// before it is durable. So a read never shows state a crash could still lose, and a caller always
/// sees its own acknowledged writes.
enum ReadRequest: Sendable {
  case campaign(String)
  case campaigns
  case claims(campaign: String, after: Int, limit: Int)
  case coupons(user: String)
  case coupon(code: String)
  case couponDetails(code: String)
  case statistics
}

/// The writer's answer to a request.
enum Reply: Sendable {
  indirect case campaign(Campaign)
  indirect case optionalCampaign(Campaign?)
  case campaigns([Campaign])
  case claim(ClaimResult)
  case claims([ClaimResult])
  case page(ClaimPage?)
  case coupons([Coupon])
  case coupon(Coupon?)
  indirect case couponDetails(CouponDetails?)
  indirect case lifecycle(LifecycleOutcome, Coupon?)
  indirect case upload(UploadReply)
  indirect case statistics(StoreStatistics)
  indirect case snapshot(CouponStore.SnapshotInfo)
  case done
  indirect case failure(CouponStoreError)
}

/// A request waiting in the queue, with the continuation that receives its reply.
struct Envelope: Sendable {
  var request: Request
  var continuation: UnsafeContinuation<Reply, Never>
}

/// A decided reply waiting for durability.
struct Completion: Sendable {
  var continuation: UnsafeContinuation<Reply, Never>
  var reply: Reply
}

/// Stable codes of remembered outcomes (they are stored in `requestRecorded` events).
enum OutcomeCode: UInt8 {
  case soldOut = 1
  case notStarted = 2
  case ended = 3
  case campaignNotFound = 4
  case codeNotFound = 5
  case codeTaken = 6
  case limitReached = 7

  init?(_ result: ClaimResult) {
    switch result {
    case .claimed: return nil
    case .soldOut: self = .soldOut
    case .notStarted: self = .notStarted
    case .ended: self = .ended
    case .campaignNotFound: self = .campaignNotFound
    case .codeNotFound: self = .codeNotFound
    case .codeTaken: self = .codeTaken
    case .limitReached: self = .limitReached
    }
  }
}

/// A 64-bit FNV-1a fingerprint of a request's kind and arguments: stable across processes (it is
/// stored in the log), so a retry after a restart is recognised and a different request that
/// reuses the id is refused.
struct Fingerprint {
  private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

  init(kind: UInt8) { mixByte(kind) }

  mutating func mixByte(_ byte: UInt8) {
    value = (value ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
  }

  mutating func mix(_ text: String?) {
    guard let text else {
      mixByte(0xFF)
      return
    }
    for byte in text.utf8 { mixByte(byte) }
    mixByte(0)
  }

  mutating func mix(number: Int64) {
    for shift in stride(from: 0, to: 64, by: 8) {
      mixByte(UInt8(truncatingIfNeeded: number >> shift))
    }
  }

  /// Mixes an optional number so that `nil` differs from every value.
  mutating func mix(optional number: Int64?) {
    guard let number else {
      mixByte(0)
      return
    }
    mixByte(1)
    mix(number: number)
  }
}
