// The reference model of the api-sequence target: what the store must answer, decided from
// SPEC.md and README.md in the plainest code possible (arrays and dictionaries, no log, no
// threads), so that any difference from the real store is a bug in one of them.
//
// Conventions the model makes explicit (the engine keeps them too):
// - user ids, codes and the arguments that make two requests "the same request" compare by their
//   UTF-8 bytes; campaign ids and request ids compare as Swift strings (canonical equivalence);
// - times are whole milliseconds, rounded down (dates the store returns are read back rounded to
//   the nearest millisecond, since `Date` cannot hold every millisecond exactly);
// - a rejection writes an event only when the request carried a request id.

import Foundation

@testable import CouponStore

/// What the model expects of a call.
enum Expected<Value> {
  /// The call returns this.
  case value(Value)
  /// The call throws a `CouponStoreError` with this code; for `invalidArgument`, `fields` are the
  /// fields that may be named (any bad one may be reported first).
  case error(CouponStoreError.Code, fields: Set<String> = [])
}

/// The model's decision for a claim, before the store's answer is known.
enum ClaimDecision {
  /// A new coupon of campaign `campaign` (index) must be issued; its code is the store's choice.
  case issue(campaign: Int, user: String?, tag: (id: String, key: Model.RequestKey)?)
  /// This answer (a rejection or a retry's remembered answer).
  case answer(ClaimResult)
}

struct Model {
  struct CampaignEntry {
    var id: String
    var spec: CampaignSpec
    var createdAt: Int64
    var issued: [Int] = []
  }

  struct CouponEntry {
    var code: String
    var campaign: Int
    var user: String?
    var issuedAt: Int64
  }

  /// What makes two requests with the same id the same request.
  enum RequestKey: Equatable {
    case create([UInt8])
    case claim(campaign: [UInt8], user: [UInt8]?)
    case claimCode(code: [UInt8], user: [UInt8]?)
  }

  enum Answer {
    case campaign(Int)
    case coupon(Int)
    case rejected(ClaimResult)
    case limitReached(campaign: String, user: String?)
  }

  var campaigns: [CampaignEntry] = []
  var coupons: [CouponEntry] = []
  var codes: Set<[UInt8]> = []
  var userCoupons: [[UInt8]: [Int]] = [:]
  /// Log records written so far (the store's last sequence).
  var events: UInt64 = 0
  /// First sequences of the segment files (each open starts or reuses one).
  var segments: Set<UInt64> = []
  var now: Int64

  var window: Int
  var remembered: [String: (key: RequestKey, answer: Answer)] = [:]
  private var order: [String] = []
  private var orderHead = 0
  /// Every request id recorded in the log, in order: what replay remembers on reopen.
  private var rememberLog: [(id: String, key: RequestKey, answer: Answer)] = []

  init(window: Int, now: Int64) {
    self.window = window
    self.now = now
  }

  // MARK: Rules

  /// Whether `text` holds a Unicode Cc control character (U+0000–U+001F, U+007F–U+009F).
  static func hasControl(_ text: String) -> Bool {
    text.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }
  }

  static func textOK(_ text: String, max: Int, allowEmpty: Bool = false) -> Bool {
    (allowEmpty || !text.isEmpty) && text.utf8.count <= max && !hasControl(text)
  }

  /// Milliseconds since 1970, rounded down and clamped (SPEC: events hold whole milliseconds).
  static func millis(_ date: Date) -> Int64 {
    let value = (date.timeIntervalSince1970 * 1000).rounded(.down)
    if value.isNaN { return 0 }
    return Int64(max(min(value, 9.0e15), -9.0e15))
  }

  /// A date the store returns, as the millisecond it stands for.
  static func returned(_ date: Date) -> Int64 {
    Int64((date.timeIntervalSince1970 * 1000).rounded())
  }

  /// The fields of a spec that break the rules of README/SPEC (empty: valid).
  static func specProblems(_ spec: CampaignSpec) -> Set<String> {
    var bad: Set<String> = []
    if let id = spec.id, !textOK(id, max: 64) { bad.insert("id") }
    if !textOK(spec.name, max: 256, allowEmpty: true) { bad.insert("name") }
    if spec.stock < 0 || spec.stock > 1 << 32 { bad.insert("stock") }
    if !spec.startsAt.timeIntervalSince1970.isFinite { bad.insert("startsAt") }
    if let endsAt = spec.endsAt {
      if !endsAt.timeIntervalSince1970.isFinite || endsAt < spec.startsAt {
        bad.insert("endsAt")
      }
    }
    if !(1...(1 << 20)).contains(spec.perUserLimit) { bad.insert("perUserLimit") }
    if !(1...65535).contains(spec.redemptionsPerCoupon) { bad.insert("redemptionsPerCoupon") }
    if !(spec.lockTimeout > 0 && spec.lockTimeout <= 365 * 86_400) { bad.insert("lockTimeout") }
    if let expiresAt = spec.expiresAt, !expiresAt.timeIntervalSince1970.isFinite {
      bad.insert("expiresAt")
    }
    switch spec.codes {
    case .generated(let pattern):
      if !patternOK(pattern, stock: max(0, spec.stock)) { bad.insert("codes") }
    case .pool:
      if spec.stock != 0 { bad.insert("stock") }
    case .pregenerated:
      bad.insert("codes")  // not generated by this target until the upload path lands
    }
    return bad
  }

  /// SPEC "Codes": length 1–64, 2–256 distinct symbols without control characters or the
  /// separator, a prefix of at most 32 bytes, groups of 1…length, codes of at most 256 bytes,
  /// and at least 1,000 × stock combinations.
  static func patternOK(_ pattern: CodePattern, stock: Int) -> Bool {
    guard (1...64).contains(pattern.length), (2...256).contains(pattern.alphabet.count),
      Set(pattern.alphabet).count == pattern.alphabet.count,
      !pattern.alphabet.contains(where: { $0 == pattern.separator || hasControl(String($0)) }),
      pattern.prefix.utf8.count <= 32, !hasControl(pattern.prefix),
      !hasControl(String(pattern.separator))
    else { return false }
    if let group = pattern.groupSize, !(1...pattern.length).contains(group) { return false }
    let symbolBytes = pattern.alphabet.map { String($0).utf8.count }.max()!
    let groups = pattern.groupSize.map { (pattern.length + $0 - 1) / $0 } ?? 1
    let bytes =
      pattern.prefix.utf8.count + symbolBytes * pattern.length
      + String(pattern.separator).utf8.count * (groups - 1)
    guard bytes <= 256 else { return false }
    return pow(Double(pattern.alphabet.count), Double(pattern.length)) >= 1000 * Double(stock)
  }

  /// Whether `code` is prefix + `length` symbols with a separator between groups.
  static func matches(_ code: String, _ pattern: CodePattern) -> Bool {
    let bytes = Array(code.utf8)
    let prefix = Array(pattern.prefix.utf8)
    guard bytes.starts(with: prefix) else { return false }
    let symbols = pattern.alphabet.map { Array(String($0).utf8) }
    let separator = Array(String(pattern.separator).utf8)
    // Positions reachable after `count` symbols; symbols may have different byte lengths, so
    // follow every way of reading them.
    var positions: Set<Int> = [prefix.count]
    for count in 0..<pattern.length {
      var next: Set<Int> = []
      for var position in positions {
        if count > 0, let group = pattern.groupSize, count % group == 0 {
          guard bytes[position...].starts(with: separator) else { continue }
          position += separator.count
        }
        for symbol in symbols where bytes[position...].starts(with: symbol) {
          next.insert(position + symbol.count)
        }
      }
      positions = next
    }
    return positions.contains(bytes.count)
  }

  /// Whether `code` could name a coupon: not empty, at most 256 bytes (the longest code a
  /// pattern can generate), no control characters. The 64-character limit of SPEC is for
  /// uploaded codes; generated ones may be longer (a 64-symbol pattern with a prefix).
  static func codeLookupOK(_ code: String) -> Bool {
    !code.isEmpty && code.utf8.count <= 256 && !hasControl(code)
  }

  static func createKey(_ spec: CampaignSpec) -> RequestKey {
    var text = "\(spec.id.map { Array($0.utf8) } ?? [])|\(Array(spec.name.utf8))|\(spec.stock)"
    text += "|\(millis(spec.startsAt))|\(spec.endsAt.map { "\(millis($0))" } ?? "nil")"
    text += "|\(spec.perUserLimit)|\(spec.redemptionsPerCoupon)"
    text += "|\(Int64((spec.lockTimeout * 1000).rounded()))"
    text += "|\(spec.expiresAt.map { "\(millis($0))" } ?? "nil")|"
    switch spec.codes {
    case .generated(let pattern):
      text += "\(pattern.alphabet.map { Array(String($0).utf8) })|\(pattern.length)"
      text += "|\(Array(pattern.prefix.utf8))|\(pattern.groupSize ?? 0)"
      text += "|\(Array(String(pattern.separator).utf8))"
    case .pool: text += "pool"
    case .pregenerated(let pattern, let count): text += "pre \(pattern) \(count)"
    }
    return .create(Array(text.utf8))
  }

  // MARK: Request ids

  /// The remembered answer for `id` if `key` is the request it named, a conflict error if it
  /// named another, or `nil` if the id is not remembered.
  func lookUp(_ id: String?, _ key: RequestKey) -> Lookup? {
    guard let id, let entry = remembered[id] else { return nil }
    return entry.key == key ? .retry(entry.answer) : .conflict
  }

  /// What a remembered request id means for a new request.
  enum Lookup {
    /// The same request again: answer as the first time.
    case retry(Answer)
    /// The id named a different request.
    case conflict
  }

  /// Records that a request with id `id` was answered (its event carries the id).
  mutating func remember(_ id: String, _ key: RequestKey, _ answer: Answer) {
    rememberLog.append((id, key, answer))
    insert(id, key, answer)
  }

  private mutating func insert(_ id: String, _ key: RequestKey, _ answer: Answer) {
    guard window > 0, remembered[id] == nil else { return }
    remembered[id] = (key, answer)
    order.append(id)
    if remembered.count > window {
      remembered[order[orderHead]] = nil
      orderHead += 1
    }
  }

  /// A reopen with request-id window `window`: replay remembers the logged ids again.
  mutating func reopened(window: Int) {
    self.window = window
    remembered = [:]
    order = []
    orderHead = 0
    for entry in rememberLog { insert(entry.id, entry.key, entry.answer) }
    segments.insert(events + 1)
  }

  // MARK: Decisions

  mutating func create(_ spec: CampaignSpec, requestID: String?) -> Expected<Int?> {
    let problems = Self.specProblems(spec)
    if !problems.isEmpty { return .error(.invalidArgument, fields: problems) }
    if let requestID, !Self.textOK(requestID, max: 128) {
      return .error(.invalidArgument, fields: ["requestID"])
    }
    switch lookUp(requestID, Self.createKey(spec)) {
    case .retry(.campaign(let index)): return .value(index)
    case .retry, .conflict: return .error(.requestIDConflict)
    case nil: break
    }
    if let id = spec.id, campaigns.contains(where: { $0.id == id }) {
      return .error(.campaignExists)
    }
    return .value(nil)
  }

  /// Records a campaign the store created.
  mutating func created(_ id: String, _ spec: CampaignSpec, requestID: String?) {
    campaigns.append(CampaignEntry(id: id, spec: spec, createdAt: now))
    events += 1
    if let requestID {
      remember(requestID, Self.createKey(spec), .campaign(campaigns.count - 1))
    }
  }

  /// The arguments of a claim that break the rules (empty: valid).
  func claimArgumentsProblems(campaign: String, user: String?, requestID: String?) -> Set<String> {
    var bad: Set<String> = []
    if !Self.textOK(campaign, max: 64) { bad.insert("campaign") }
    if let user, !Self.textOK(user, max: 128) { bad.insert("user") }
    if let requestID, !Self.textOK(requestID, max: 128) { bad.insert("requestID") }
    return bad
  }

  /// Whether a batch of valid claims is refused for reusing a request id: one of its ids is
  /// remembered for a different request, or (with idempotency on) names two different requests
  /// within the batch. All or nothing: then no claim of the batch is decided.
  func batchConflicts(_ claims: [ClaimRequest]) -> Bool {
    var named: [String: RequestKey] = [:]
    for claim in claims {
      guard let id = claim.requestID else { continue }
      let key = Self.claimKey(claim.campaign, claim.user)
      if case .conflict = lookUp(id, key) { return true }
      if window > 0, let earlier = named[id], earlier != key { return true }
      named[id] = named[id] ?? key
    }
    return false
  }

  static func claimKey(_ campaign: String, _ user: String?) -> RequestKey {
    .claim(campaign: Array(campaign.utf8), user: user.map { Array($0.utf8) })
  }

  /// Decides a claim whose arguments are valid and whose id does not conflict.
  mutating func claim(campaign id: String, user: String?, requestID: String?) -> ClaimDecision {
    let key = Self.claimKey(id, user)
    if case .retry(let answer) = lookUp(requestID, key) {
      return .answer(result(of: answer))
    }
    let tag = requestID.map { ($0, key) }
    guard let index = campaigns.firstIndex(where: { $0.id == id }) else {
      return reject(.campaignNotFound, tag)
    }
    let spec = campaigns[index].spec
    if now < Self.millis(spec.startsAt) { return reject(.notStarted, tag) }
    if let endsAt = spec.endsAt, now > Self.millis(endsAt) { return reject(.ended, tag) }
    let held = heldCoupons(user, campaign: index)
    if user != nil, held.count >= spec.perUserLimit {
      if let tag {
        events += 1
        remember(tag.0, tag.1, .limitReached(campaign: id, user: user))
      }
      return .answer(.limitReached(existing: held.map(coupon)))
    }
    if campaigns[index].issued.count >= stock(of: index) { return reject(.soldOut, tag) }
    return .issue(campaign: index, user: user, tag: tag.map { (id: $0.0, key: $0.1) })
  }

  /// Records a coupon the store issued after an `.issue` decision.
  mutating func issued(
    _ code: String, campaign: Int, user: String?, tag: (id: String, key: RequestKey)?
  ) {
    let index = coupons.count
    coupons.append(CouponEntry(code: code, campaign: campaign, user: user, issuedAt: now))
    codes.insert(Array(code.utf8))
    campaigns[campaign].issued.append(index)
    if let user { userCoupons[Array(user.utf8), default: []].append(index) }
    events += 1
    if let tag { remember(tag.id, tag.key, .coupon(index)) }
  }

  static func claimCodeKey(_ code: String, _ user: String?) -> RequestKey {
    .claimCode(code: Array(code.utf8), user: user.map { Array($0.utf8) })
  }

  /// Decides a claim of a named code (valid arguments, no conflict). No campaign has a code
  /// pool until uploads exist, so every code is "not found".
  mutating func claimCode(_ code: String, user: String?, requestID: String?) -> ClaimDecision {
    let key = Self.claimCodeKey(code, user)
    if case .retry(let answer) = lookUp(requestID, key) {
      return .answer(result(of: answer))
    }
    return reject(.codeNotFound, requestID.map { ($0, key) })
  }

  private mutating func reject(_ result: ClaimResult, _ tag: (String, RequestKey)?)
    -> ClaimDecision
  {
    if let tag {
      events += 1
      remember(tag.0, tag.1, .rejected(result))
    }
    return .answer(result)
  }

  private func result(of answer: Answer) -> ClaimResult {
    switch answer {
    case .coupon(let index): return .claimed(coupon(index))
    case .rejected(let result): return result
    case .limitReached(let campaign, let user):
      guard let index = campaigns.firstIndex(where: { $0.id == campaign }) else {
        return .limitReached(existing: [])
      }
      return .limitReached(existing: heldCoupons(user, campaign: index).map(coupon))
    case .campaign: return .campaignNotFound
    }
  }

  // MARK: Reads

  func stock(of index: Int) -> Int {
    if case .generated = campaigns[index].spec.codes { return campaigns[index].spec.stock }
    return 0
  }

  func heldCoupons(_ user: String?, campaign: Int) -> [Int] {
    guard let user else { return [] }
    return (userCoupons[Array(user.utf8)] ?? []).filter { coupons[$0].campaign == campaign }
  }

  func coupon(_ index: Int) -> Coupon {
    let entry = coupons[index]
    return Coupon(
      code: entry.code, campaign: campaigns[entry.campaign].id, user: entry.user,
      state: .assigned, issuedAt: Date(timeIntervalSince1970: Double(entry.issuedAt) / 1000),
      redemptions: 0, lockExpiresAt: nil)
  }

  func couponsOf(_ user: String) -> [Coupon] {
    (userCoupons[Array(user.utf8)] ?? []).map(coupon)
  }

  func coupon(code: String) -> Coupon? {
    coupons.firstIndex { Array($0.code.utf8) == Array(code.utf8) }.map(coupon)
  }

  func page(_ index: Int, after: Int, limit: Int) -> ClaimPage {
    let issued = campaigns[index].issued
    let start = min(after, issued.count)
    let end = min(start + limit, issued.count)
    return ClaimPage(
      claims: issued[start..<end].map { coupon in
        let entry = coupons[coupon]
        return ClaimRecord(
          user: entry.user, code: entry.code,
          claimedAt: Date(timeIntervalSince1970: Double(entry.issuedAt) / 1000))
      },
      next: end < issued.count ? ClaimCursor(position: end) : nil)
  }

  var users: Int { userCoupons.count }
}
