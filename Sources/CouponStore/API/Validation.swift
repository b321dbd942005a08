// Argument checks, run on the caller's task before a request reaches the writer: bad input gets a
// typed error naming the field, and nothing is written.

import Foundation

enum Validate {
  static let idBytesMax = 64
  static let userBytesMax = 128
  static let nameBytesMax = 256
  static let requestIDBytesMax = 128
  static let stockMax = 1 << 32
  static let perUserLimitMax = 1 << 20
  static let redemptionsMax = Int(UInt16.max)
  static let batchClaimsMax = 100_000
  static let claimsPageMax = 100_000
  /// A pregenerated book is generated in one writer turn (see Engine+Pool.swift).
  static let pregeneratedCodesMax = 100_000

  static func text(_ value: String, field: String, bytesMax: Int, allowEmpty: Bool = false)
    throws(CouponStoreError)
  {
    let bytes = value.utf8.count
    if !allowEmpty, bytes == 0 { throw .invalid(field, "\(field) must not be empty") }
    if bytes > bytesMax {
      throw .invalid(field, "\(field) must be at most \(bytesMax) bytes of UTF-8, got \(bytes)")
    }
    if containsControlCharacter(value) {
      throw .invalid(field, "\(field) must not contain control characters")
    }
  }

  /// Whether `text` holds a control character (Unicode general category Cc: U+0000–U+001F and
  /// U+007F–U+009F). A scan of the UTF-8 bytes, because asking each scalar for its general
  /// category costs more than the rest of a claim: Cc is exactly the bytes below 0x20, 0x7F, and
  /// the two-byte sequences C2 80 – C2 9F.
  static func containsControlCharacter(_ text: String) -> Bool {
    var previous: UInt8 = 0
    for byte in text.utf8 {
      if byte < 0x20 || byte == 0x7F { return true }
      if previous == 0xC2, (0x80...0x9F).contains(byte) { return true }
      previous = byte
    }
    return false
  }

  static func user(_ user: String?) throws(CouponStoreError) {
    if let user { try text(user, field: "user", bytesMax: userBytesMax) }
  }

  static func campaignID(_ id: String) throws(CouponStoreError) {
    try text(id, field: "campaign", bytesMax: idBytesMax)
  }

  static func code(_ code: String) throws(CouponStoreError) {
    if let problem = CodeRules.lookupProblem(code) {
      throw .invalid("code", "code is invalid: \(problem)")
    }
  }

  static func requestTag(_ requestID: String?, _ fingerprint: () -> Fingerprint)
    throws(CouponStoreError) -> RequestTag?
  {
    guard let requestID else { return nil }
    try text(requestID, field: "requestID", bytesMax: requestIDBytesMax)
    return RequestTag(id: requestID, fingerprint: fingerprint().value)
  }

  static func spec(_ spec: CampaignSpec) throws(CouponStoreError) {
    if let id = spec.id { try text(id, field: "id", bytesMax: idBytesMax) }
    try text(spec.name, field: "name", bytesMax: nameBytesMax, allowEmpty: true)
    guard spec.stock >= 0 else { throw .invalid("stock", "stock must be ≥ 0, got \(spec.stock)") }
    guard spec.stock <= stockMax else {
      throw .invalid("stock", "stock must be at most \(stockMax), got \(spec.stock)")
    }
    guard spec.startsAt.timeIntervalSince1970.isFinite else {
      throw .invalid("startsAt", "startsAt must be a finite date")
    }
    if let endsAt = spec.endsAt {
      guard endsAt.timeIntervalSince1970.isFinite else {
        throw .invalid("endsAt", "endsAt must be a finite date")
      }
      guard endsAt >= spec.startsAt else {
        throw .invalid("endsAt", "endsAt (\(endsAt)) is before startsAt (\(spec.startsAt))")
      }
    }
    guard (1...perUserLimitMax).contains(spec.perUserLimit) else {
      throw .invalid(
        "perUserLimit", "perUserLimit must be 1–\(perUserLimitMax), got \(spec.perUserLimit)")
    }
    guard (1...redemptionsMax).contains(spec.redemptionsPerCoupon) else {
      throw .invalid(
        "redemptionsPerCoupon",
        "redemptionsPerCoupon must be 1–\(redemptionsMax), got \(spec.redemptionsPerCoupon)")
    }
    guard spec.lockTimeout.isFinite, spec.lockTimeout > 0, spec.lockTimeout <= 365 * 86_400 else {
      throw .invalid("lockTimeout", "lockTimeout must be more than 0 and at most a year (seconds)")
    }
    if let expiresAt = spec.expiresAt, !expiresAt.timeIntervalSince1970.isFinite {
      throw .invalid("expiresAt", "expiresAt must be a finite date")
    }
    switch spec.codes {
    case .generated(let pattern):
      try pattern.validate(field: "codes", forStock: spec.stock)
    case .pool:
      guard spec.stock == 0 else {
        throw .invalid(
          "stock", "a pool campaign's stock is its pool size: pass stock 0 and upload codes")
      }
    case .pregenerated(let pattern, let count):
      guard spec.stock == 0 else {
        throw .invalid(
          "stock", "a pregenerated campaign's stock is its code count: pass stock 0")
      }
      guard (0...pregeneratedCodesMax).contains(count) else {
        throw .invalid(
          "codes.count",
          "a pregenerated book holds 0–100,000 codes (upload bigger pools), got \(count)")
      }
      try pattern.validate(field: "codes", forStock: count)
    }
  }

  /// Every field of a (validated) spec, as the campaign records it: two creates that would make
  /// different campaigns must not look like a retry of one another.
  static func fingerprint(_ spec: CampaignSpec) -> Fingerprint {
    var print = Fingerprint(kind: 1)
    print.mix(spec.id)
    print.mix(spec.name)
    print.mix(number: Int64(spec.stock))
    print.mix(number: spec.startsAt.millis)
    print.mix(optional: spec.endsAt?.millis)
    print.mix(number: Int64(spec.perUserLimit))
    print.mix(number: Int64(spec.redemptionsPerCoupon))
    print.mix(String(describing: spec.codes))
    print.mix(number: Int64((spec.lockTimeout * 1000).rounded()))
    print.mix(optional: spec.expiresAt?.millis)
    return print
  }
}
