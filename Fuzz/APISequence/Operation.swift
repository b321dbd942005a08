// The api-sequence target's operations, and how fuzz bytes choose them.
//
// To add an operation (lock, unlock, redeem, rollback and uploads when branch `books` lands):
// add a case here, decode its arguments in `decode`, perform it and compare it with the model in
// APISequenceFuzzer.perform, and teach Model.swift the rule.

import CouponStore
import Foundation

enum Operation: CustomStringConvertible {
  case create(CampaignSpec, requestID: String?)
  case claim(campaign: String, user: String?, requestID: String?)
  case claimCode(code: String, user: String?, requestID: String?)
  case batch([ClaimRequest])
  case readCampaign(String)
  case readCampaigns
  case readClaims(campaign: String, after: Int?, limit: Int)
  case readCoupons(user: String)
  case readCoupon(code: String)
  case statistics
  case advanceClock(milliseconds: Int64)
  case reopen(window: Int)
  case tamper(Tamper)

  /// The operation the next input bytes choose, with arguments that often name what exists.
  /// `lastWrite` is the previous write, which the input may retry (a client that timed out).
  static func decode(_ input: inout FuzzInput, model: Model, lastWrite: Operation?) -> Operation {
    let choice = input.byte()
    if choice >= 0xE0, let lastWrite { return retry(lastWrite, &input, model) }
    switch choice % 20 {
    case 0, 1:
      return .create(
        Hostile.spec(&input, now: model.now),
        requestID: Hostile.optional(&input, vocabulary: Hostile.requestIDs))
    case 2, 3, 4, 5, 6:
      return .claim(
        campaign: campaign(&input, model), user: user(&input),
        requestID: Hostile.optional(&input, vocabulary: Hostile.requestIDs))
    case 7:
      return .claimCode(
        code: code(&input, model), user: user(&input),
        requestID: Hostile.optional(&input, vocabulary: Hostile.requestIDs))
    case 8, 9:
      var claims: [ClaimRequest] = []
      for _ in 0..<input.pick([0, 1, 2, 3, 5, 8]) {
        // Now and then a claim reuses an earlier claim's request id (a client batching retries).
        let requestID =
          !claims.isEmpty && input.byte() % 4 == 0
          ? input.pick(claims).requestID
          : Hostile.optional(&input, vocabulary: Hostile.requestIDs)
        claims.append(
          ClaimRequest(
            campaign: campaign(&input, model), user: user(&input), requestID: requestID))
      }
      return .batch(claims)
    case 10: return .readCampaign(campaign(&input, model))
    case 11: return .readCampaigns
    case 12:
      return .readClaims(
        campaign: campaign(&input, model),
        after: input.pick([nil, 0, 1, 2, 3, 1 << 40, Int.max, -1]),
        limit: input.pick([1, 2, 3, 1000, 100_000, 0, -1, 100_001]))
    case 13: return .readCoupons(user: user(&input) ?? "")
    case 14: return .readCoupon(code: code(&input, model))
    case 15: return .statistics
    case 16, 17:
      return .advanceClock(milliseconds: Int64(input.pick([1, 10, 999, 1000, 1001, 5000, -1])))
    case 18: return .reopen(window: input.pick([0, 1, 2, 3, 1_000_000]))
    default:
      if input.byte() < 0xC0 { return .reopen(window: input.pick([0, 1, 2, 3, 1_000_000])) }
      return .tamper(Tamper(&input))
    }
  }

  /// `write` again with the same request id (one is added if it had none), either unchanged (a
  /// retry, which must get the first answer) or with one argument changed (a different request
  /// reusing the id, which must be refused).
  static func retry(_ write: Operation, _ input: inout FuzzInput, _ model: Model) -> Operation {
    let change = input.byte() % 3 != 0
    switch write {
    case .create(var spec, let requestID):
      if change {
        switch input.byte() % 8 {
        case 0: spec.name += "!"
        case 1: spec.stock &+= 1
        case 2: spec.startsAt = spec.startsAt.addingTimeInterval(-1)
        case 3: spec.endsAt = spec.endsAt == nil ? spec.startsAt.addingTimeInterval(60) : nil
        case 4: spec.perUserLimit &+= 1
        case 5: spec.redemptionsPerCoupon &+= 1
        case 6: spec.lockTimeout += 1
        default:
          spec.expiresAt = spec.expiresAt == nil ? spec.startsAt.addingTimeInterval(60) : nil
        }
      }
      return .create(spec, requestID: requestID ?? "r1")
    case .claim(let campaign, let user, let requestID):
      return .claim(
        campaign: change ? self.campaign(&input, model) : campaign,
        user: change && input.bool() ? self.user(&input) : user, requestID: requestID ?? "r1")
    case .claimCode(let code, let user, let requestID):
      return .claimCode(
        code: change ? self.code(&input, model) : code,
        user: change ? self.user(&input) : user, requestID: requestID ?? "r1")
    case .batch(let claims):
      return .batch(
        claims.map { claim in
          var claim = claim
          if change, input.bool() { claim.user = self.user(&input) }
          claim.requestID = claim.requestID ?? "r1"
          return claim
        })
    default:
      return write
    }
  }

  /// Whether the operation writes (and so may be retried).
  var isWrite: Bool {
    switch self {
    case .create, .claim, .claimCode, .batch: true
    default: false
    }
  }

  /// A campaign id: one the store created (sometimes in another normalization form) or not.
  static func campaign(_ input: inout FuzzInput, _ model: Model) -> String {
    let choice = input.byte()
    if choice % 4 != 0, !model.campaigns.isEmpty {
      let id = model.campaigns[Int(choice) % model.campaigns.count].id
      switch choice % 16 {
      case 1: return id.decomposedStringWithCanonicalMapping
      case 2: return id.precomposedStringWithCanonicalMapping
      default: return id
      }
    }
    return Hostile.string(&input, vocabulary: Hostile.campaignIDs)
  }

  static func user(_ input: inout FuzzInput) -> String? {
    input.byte() % 6 == 0 ? nil : Hostile.string(&input, vocabulary: Hostile.users)
  }

  /// A code: one the store issued or not.
  static func code(_ input: inout FuzzInput, _ model: Model) -> String {
    let choice = input.byte()
    if choice % 2 == 0, !model.coupons.isEmpty {
      return model.coupons[Int(choice / 2) % model.coupons.count].code
    }
    return Hostile.string(&input, vocabulary: ["K7QX2-M9DHT", "가1나2다3라4마", "A"])
  }

  /// A spec in words. Dates as seconds since 1970: `Date.description` traps on NaN.
  static func describe(_ spec: CampaignSpec) -> String {
    func seconds(_ date: Date?) -> String { date.map { "\($0.timeIntervalSince1970)" } ?? "nil" }
    return "CampaignSpec(id: \(String(reflecting: spec.id)), name: \(spec.name.debugDescription), "
      + "stock: \(spec.stock), startsAt: \(seconds(spec.startsAt)), endsAt: \(seconds(spec.endsAt)), "
      + "perUserLimit: \(spec.perUserLimit), redemptionsPerCoupon: \(spec.redemptionsPerCoupon), "
      + "codes: \(spec.codes), lockTimeout: \(spec.lockTimeout), "
      + "expiresAt: \(seconds(spec.expiresAt)))"
  }

  var description: String {
    switch self {
    case .create(let spec, let requestID):
      return "create(\(Self.describe(spec)), requestID: \(String(reflecting: requestID)))"
    case .claim(let campaign, let user, let requestID):
      return "claim(campaign: \(campaign.debugDescription), user: \(String(reflecting: user)), "
        + "requestID: \(String(reflecting: requestID)))"
    case .claimCode(let code, let user, let requestID):
      return "claim(code: \(code.debugDescription), user: \(String(reflecting: user)), "
        + "requestID: \(String(reflecting: requestID)))"
    case .batch(let claims): return "claim(batch: \(claims))"
    case .readCampaign(let id): return "campaign(\(id.debugDescription))"
    case .readCampaigns: return "campaigns()"
    case .readClaims(let campaign, let after, let limit):
      return "claims(of: \(campaign.debugDescription), after: \(String(describing: after)), "
        + "limit: \(limit))"
    case .readCoupons(let user): return "coupons(of: \(user.debugDescription))"
    case .readCoupon(let code): return "coupon(code: \(code.debugDescription))"
    case .statistics: return "statistics()"
    case .advanceClock(let milliseconds): return "clock += \(milliseconds) ms"
    case .reopen(let window): return "close, reopen with requestIDWindow \(window)"
    case .tamper(let tamper): return "close, \(tamper), reopen"
    }
  }
}

/// Damage done to the closed store's directory before a reopen: the "copied-in directory" and
/// "disk that flips bits" threats. After it the model no longer says what the store holds, so
/// the run checks only that the store opens or refuses with a typed error, keeps its invariants,
/// and goes on working.
struct Tamper: CustomStringConvertible {
  enum Kind {
    /// Append bytes to the last segment (a torn write, or garbage).
    case appendToLast([UInt8])
    /// Flip one bit of a segment (which one and where chosen by the input).
    case flipBit(segment: Int, offset: Int, bit: UInt8)
    /// Cut bytes off the end of the last segment.
    case truncateLast(Int)
    /// Add a file (a segment built by the fuzzer, or anything else).
    case addFile(name: String, bytes: [UInt8])
    /// Replace every file with segments built by the fuzzer: a copied-in directory.
    case replaceAll([(name: String, bytes: [UInt8])])
  }

  var kind: Kind

  init(_ input: inout FuzzInput) {
    switch input.byte() % 6 {
    case 0: kind = .appendToLast(input.take(input.int(in: 1...64)))
    case 1:
      kind = .flipBit(
        segment: input.int(in: 0...3), offset: input.int(in: 0...65535),
        bit: UInt8(input.int(in: 0...7)))
    case 2: kind = .truncateLast(input.int(in: 1...64))
    case 3:
      var plan = LogPlan(&input)
      let file = plan.files.removeLast()
      kind = .addFile(name: file.name, bytes: file.bytes)
    default:
      kind = .replaceAll(LogPlan(&input).files)
    }
  }

  var description: String {
    switch kind {
    case .appendToLast(let bytes): return "append \(bytes) to the last segment"
    case .flipBit(let segment, let offset, let bit):
      return "flip bit \(bit) at offset \(offset) of segment \(segment)"
    case .truncateLast(let count): return "cut \(count) bytes off the last segment"
    case .addFile(let name, let bytes): return "add file \(name.debugDescription) (\(bytes))"
    case .replaceAll(let files):
      return "replace the directory with "
        + files.map { "\($0.name.debugDescription): \($0.bytes)" }.joined(separator: ", ")
    }
  }
}
