// The simulator's reference model: what the store must hold, given what it acknowledged.
//
// The model keeps two kinds of facts. Acknowledged facts (a campaign whose creation returned, a
// coupon a claim returned, an answer to a request id, a coupon a read showed) must all be in the
// store after any crash. Writes whose callers never got an answer (the store stopped, or the power
// went out first) are pending: after a crash each may or may not have happened, but if it did it
// happened whole, and nothing else may appear. After every reopen the model checks the store
// against both, then adopts what the store holds as its new acknowledged state (the pending
// writes are resolved: the store's state is durable from then on).
//
// Coupon books (SimulationModel+Lifecycle.swift) follow the same rules: an acknowledged upload's
// codes and every acknowledged lock, unlock, redemption and rollback must survive exactly (state,
// owner, redemption count, lock expiry, audit trail); an in-flight one may or may not have
// happened; lock expiries follow from the clock.
//
// With one caller the model also predicts every answer exactly (the writer decides in arrival
// order, and one caller's order is known), so a wrong decision is caught as it happens, not only
// after a crash. With several callers the interleaving is not known, and the checks are those
// that hold under any serialisation consistent with the acknowledgements.

import Foundation

@testable import CouponStore

/// Who holds a coupon: what an acknowledgement or a read tells about it.
struct CouponFacts: Hashable, Sendable {
  var campaign: String
  var user: String?
}

/// The fields of a campaign the simulation checks after recovery.
struct CampaignFacts: Hashable, Sendable {
  var id: String
  var name: String
  var stock: Int
  var perUserLimit: Int
  var startsAt: Int64
  var endsAt: Int64?
  var redemptionsPerCoupon: Int
  var lockTimeoutMillis: Int64
  var expiresAt: Int64?
  /// Whether codes are uploaded (the stock is the pool's size and grows with each upload).
  var isPool: Bool

  init(_ campaign: Campaign) {
    id = campaign.id
    name = campaign.name
    stock = campaign.stock
    perUserLimit = campaign.perUserLimit
    startsAt = campaign.startsAt.millis
    endsAt = campaign.endsAt?.millis
    redemptionsPerCoupon = campaign.redemptionsPerCoupon
    lockTimeoutMillis = Int64((campaign.lockTimeout * 1000).rounded())
    expiresAt = campaign.expiresAt?.millis
    isPool = campaign.codes == .pool
  }

  init(spec: CampaignSpec, id: String) {
    self.id = id
    name = spec.name
    stock = spec.stock
    perUserLimit = spec.perUserLimit
    startsAt = spec.startsAt.millis
    endsAt = spec.endsAt?.millis
    redemptionsPerCoupon = spec.redemptionsPerCoupon
    lockTimeoutMillis = Int64((spec.lockTimeout * 1000).rounded())
    expiresAt = spec.expiresAt?.millis
    isPool = spec.codes == .pool
  }

  /// The facts with the stock left out (a pool's stock is checked against its uploads).
  var withoutPoolStock: CampaignFacts {
    var facts = self
    if isPool { facts.stock = 0 }
    return facts
  }
}

/// One claim as the workload asked for it. A claim of a named pool code (`claim(code:)`) has
/// `code`, and `campaign` is the campaign the caller believes holds it.
struct ClaimCall: Hashable, Sendable {
  var campaign: String
  var user: String?
  var requestID: String?
  var code: String? = nil
}

/// An answer reduced to what must repeat when a request id is retried: the code of a claimed
/// coupon, or the kind of rejection.
enum ClaimOutcome: Hashable, Sendable, CustomStringConvertible {
  case claimed(code: String)
  case rejected(String)

  init(_ result: ClaimResult) {
    switch result {
    case .claimed(let coupon): self = .claimed(code: coupon.code)
    case .limitReached: self = .rejected("limitReached")
    case .soldOut: self = .rejected("soldOut")
    case .notStarted: self = .rejected("notStarted")
    case .ended: self = .rejected("ended")
    case .campaignNotFound: self = .rejected("campaignNotFound")
    case .codeNotFound: self = .rejected("codeNotFound")
    case .codeTaken: self = .rejected("codeTaken")
    }
  }

  var description: String {
    switch self {
    case .claimed(let code): "claimed(\(code))"
    case .rejected(let reason): reason
    }
  }
}

/// What the workload learned, in the order one caller learned it.
enum SimulationEvent: Sendable {
  /// A campaign creation: its answer, or `nil` if the call failed (pending).
  case created(CampaignSpec, Campaign?)
  /// One claim (a batch contributes one per element): its answer, or `nil` if the call failed.
  case claimed(ClaimCall, ClaimResult?)
  /// Coupons (code and owner) a read returned: durable by contract.
  case seen([(code: String, facts: CouponFacts)])
  /// A lock, unlock, redemption or rollback: its answer (`nil` if the call failed), and the
  /// clock before the call and after the answer.
  case lifecycle(LifecycleCall, LifecycleAnswer?, TimeWindow)
  /// An upload of pool codes: its answer, or `nil` if the call failed.
  case uploaded(UploadCall, AddCodesResult?)
}

/// What a store holds, read through its public API.
struct ObservedState: Equatable {
  var campaigns: [Campaign] = []
  /// Every campaign's claims, in issue order.
  var claims: [String: [ClaimRecord]] = [:]
  var coupons: [String: CouponFacts] = [:]
  /// The coupons the model asked about (``SimulationModel/trackedCodes``), with their history.
  var details: [String: CouponDetails] = [:]
  /// Every coupon each of the workload's users holds (states included).
  var userCoupons: [String: [Coupon]] = [:]
  /// Coupons per state of each campaign, from `statistics()`.
  var couponStates: [String: [CouponState: Int]] = [:]
  /// When the store was read (its clock).
  var time: Int64 = 0
}

struct SimulationModel {
  var campaigns: [String: CampaignFacts] = [:]
  /// Changed only through ``add(_:_:)``, which keeps the two indexes below in step.
  private(set) var coupons: [String: CouponFacts] = [:]
  /// Codes by owner and campaign, and coupons per campaign: predicting a claim must not scan
  /// every coupon (bulk scenarios hold tens of thousands).
  private var holdings: [CouponFacts: [String]] = [:]
  private var issuedCounts: [String: Int] = [:]
  /// Answers to request ids, as acknowledged.
  var requests: [String: (call: ClaimCall, outcome: ClaimOutcome)] = [:]
  /// Creations whose fate is unknown.
  var pendingCampaigns: [CampaignSpec] = []
  /// Claims whose fate is unknown, by campaign and user.
  var pendingClaims: [ClaimCall] = []
  /// Coupon books: see SimulationModel+Lifecycle.swift.
  var books = BookFacts()

  // MARK: Learning from the workload

  /// Adds what one caller learned; returns contradictions (an acknowledged code handed out twice).
  mutating func learn(_ events: [SimulationEvent]) -> [String] {
    var problems: [String] = []
    func acknowledge(_ coupon: Coupon, _ why: String) {
      let facts = CouponFacts(campaign: coupon.campaign, user: coupon.user)
      if let known = coupons[coupon.code], known != facts {
        problems.append(
          "code \(coupon.code) acknowledged for \(known) and, \(why), for \(facts): codes must "
            + "be unique")
      }
      if coupons[coupon.code] == nil { add(coupon.code, facts) }
    }
    for event in events {
      switch event {
      case .created(let spec, let campaign?):
        campaigns[campaign.id] = CampaignFacts(campaign)
        _ = spec
      case .created(let spec, nil):
        pendingCampaigns.append(spec)
      case .claimed(let call, let result?):
        if case .claimed(let coupon) = result { acknowledge(coupon, "by a claim") }
        if case .limitReached(let existing) = result {
          for coupon in existing { acknowledge(coupon, "as held (limitReached)") }
        }
        if let id = call.requestID, requests[id] == nil {
          requests[id] = (call, ClaimOutcome(result))
        }
      case .claimed(let call, nil):
        pendingClaims.append(call)
      case .seen(let seen):
        for (code, facts) in seen {
          acknowledge(Coupon(code: code, campaign: facts.campaign, user: facts.user), "by a read")
        }
      case .lifecycle(let call, let answer?, let window):
        problems += learnLifecycle(call, answer, window)
      case .lifecycle(let call, nil, let window):
        books.pendingLifecycle.append((call, window.earliest))
      case .uploaded(let call, let result?):
        problems += learnUpload(call, result)
      case .uploaded(let call, nil):
        books.pendingUploads.append(call)
      }
    }
    return problems
  }

  // MARK: Predicting (one caller)

  /// Records an acknowledged coupon and indexes it.
  private mutating func add(_ code: String, _ facts: CouponFacts) {
    coupons[code] = facts
    holdings[facts, default: []].append(code)
    issuedCounts[facts.campaign, default: 0] += 1
  }

  func held(by user: String, in campaign: String) -> [String] {
    holdings[CouponFacts(campaign: campaign, user: user)] ?? []
  }

  func issued(_ campaign: String) -> Int {
    issuedCounts[campaign] ?? 0
  }

  /// The answer the store must give to `call` at time `now`, given everything acknowledged.
  /// `nil` stands for "a new coupon of that campaign for that user".
  func expectedOutcome(_ call: ClaimCall, now: Int64) -> ClaimOutcome? {
    if let id = call.requestID, let remembered = requests[id] { return remembered.outcome }
    if let code = call.code { return expectedCodeClaim(code, user: call.user, now: now) }
    guard let campaign = campaigns[call.campaign] else { return .rejected("campaignNotFound") }
    if now < campaign.startsAt { return .rejected("notStarted") }
    if let endsAt = campaign.endsAt, now > endsAt { return .rejected("ended") }
    if let user = call.user, held(by: user, in: call.campaign).count >= campaign.perUserLimit {
      return .rejected("limitReached")
    }
    if issued(call.campaign) >= campaign.stock { return .rejected("soldOut") }
    return nil
  }

  /// Checks one caller's answer against the prediction; `nil` if it matches.
  func mismatch(_ call: ClaimCall, _ result: ClaimResult, now: Int64) -> String? {
    let expected = expectedOutcome(call, now: now)
    let actual = ClaimOutcome(result)
    switch (expected, result) {
    case (nil, .claimed(let coupon)):
      if coupon.campaign != call.campaign || coupon.user != call.user {
        return "\(call) got a coupon of \(coupon.campaign) for \(coupon.user ?? "nobody")"
      }
      if coupons[coupon.code] != nil {
        return "\(call) got code \(coupon.code), which was already issued"
      }
      if let code = call.code, coupon.code != code {
        return "\(call) got code \(coupon.code)"
      }
      if campaigns[call.campaign]?.isPool == true, books.pool[coupon.code] != call.campaign {
        return "\(call) got code \(coupon.code), which was never uploaded to its pool"
      }
      return nil
    case (.rejected("limitReached"), .limitReached(let existing)):
      let heldCodes = call.user.map { Set(held(by: $0, in: call.campaign)) } ?? []
      if Set(existing.map(\.code)) != heldCodes {
        return "\(call) answered limitReached with \(existing.map(\.code)), the user holds "
          + "\(heldCodes.sorted())"
      }
      return nil
    case (let expected?, _):
      return expected == actual ? nil : "\(call) answered \(actual), expected \(expected)"
    case (nil, _):
      return "\(call) answered \(actual), expected a new coupon"
    }
  }

  // MARK: Checking a recovered store

  /// Every way `observed` (a store reopened after a crash) contradicts the model. With `lossy`
  /// (after a bit flip and salvage), acknowledged data may be missing, but nothing may be wrong.
  func violations(of observed: ObservedState, lossy: Bool = false) -> [String] {
    var problems: [String] = []
    let observedCampaigns = Dictionary(
      observed.campaigns.map { ($0.id, CampaignFacts($0)) }, uniquingKeysWith: { first, _ in first }
    )
    if observedCampaigns.count != observed.campaigns.count {
      problems.append("campaigns() lists an id twice")
    }
    // Invariants of the store itself.
    var perUser: [CouponFacts: Int] = [:]
    var codesSeen: Set<String> = []
    for campaign in observed.campaigns {
      let claims = observed.claims[campaign.id] ?? []
      if campaign.issued != claims.count {
        problems.append(
          "campaign \(campaign.id) reports issued \(campaign.issued), lists \(claims.count)")
      }
      if campaign.issued > campaign.stock {
        problems.append("campaign \(campaign.id) oversold: \(campaign.issued) > \(campaign.stock)")
      }
      for claim in claims {
        if !codesSeen.insert(claim.code).inserted {
          problems.append("code \(claim.code) issued twice")
        }
        if let user = claim.user {
          perUser[CouponFacts(campaign: campaign.id, user: user), default: 0] += 1
        }
      }
    }
    for (key, count) in perUser {
      if let limit = observedCampaigns[key.campaign]?.perUserLimit, count > limit {
        problems.append("user \(key.user ?? "") holds \(count) of \(key.campaign), limit \(limit)")
      }
    }
    // Acknowledged campaigns are all there, unchanged.
    for (id, facts) in campaigns.sorted(by: { $0.key < $1.key }) {
      guard let found = observedCampaigns[id] else {
        if !lossy { problems.append("acknowledged campaign \(id) is missing") }
        continue
      }
      if found.withoutPoolStock != facts.withoutPoolStock {
        problems.append("campaign \(id) is \(found), acknowledged as \(facts)")
      }
    }
    // Campaigns nobody acknowledged come from pending creations, at most one each.
    var unexplainedGenerated = pendingCampaigns.filter { $0.id == nil }.count
    for (id, facts) in observedCampaigns where campaigns[id] == nil {
      if let spec = pendingCampaigns.first(where: { $0.id == id }) {
        if CampaignFacts(spec: spec, id: id).withoutPoolStock != facts.withoutPoolStock {
          problems.append("campaign \(id) is \(facts), but its pending creation asked for \(spec)")
        }
      } else if unexplainedGenerated > 0 {
        unexplainedGenerated -= 1
      } else {
        problems.append("campaign \(id) exists, but no creation of it was ever requested")
      }
    }
    // Acknowledged coupons are all there, with the same owner.
    for (code, facts) in coupons.sorted(by: { $0.key < $1.key }) {
      guard let found = observed.coupons[code] else {
        if !lossy { problems.append("acknowledged coupon \(code) (\(facts)) is missing") }
        continue
      }
      if found != facts { problems.append("coupon \(code) is \(found), acknowledged as \(facts)") }
    }
    // Coupons nobody acknowledged come from pending claims, at most one each.
    var pending: [CouponFacts: Int] = [:]
    for call in pendingClaims {
      pending[CouponFacts(campaign: call.campaign, user: call.user), default: 0] += 1
    }
    var extra: [CouponFacts: [String]] = [:]
    for (code, facts) in observed.coupons where coupons[code] == nil {
      extra[facts, default: []].append(code)
    }
    for (facts, codes) in extra.sorted(by: { $0.value[0] < $1.value[0] }) {
      let allowed = pending[facts] ?? 0
      if codes.count > allowed {
        problems.append(
          "\(codes.count) unacknowledged coupons of \(facts.campaign) for "
            + "\(facts.user ?? "nobody") (\(codes.sorted().prefix(5).joined(separator: ", "))), "
            + "but only \(allowed) such claims were in flight")
      }
    }
    problems += bookViolations(of: observed, lossy: lossy)
    return problems
  }

  /// Adopts a recovered store's state: pending writes are resolved, the store's contents are
  /// now the acknowledged state. Request ids whose answer is known are kept.
  mutating func resolve(_ observed: ObservedState, lossy: Bool = false) {
    campaigns = Dictionary(
      observed.campaigns.map { ($0.id, CampaignFacts($0)) }, uniquingKeysWith: { first, _ in first }
    )
    coupons = [:]
    holdings = [:]
    issuedCounts = [:]
    for (code, facts) in observed.coupons { add(code, facts) }
    pendingCampaigns = []
    pendingClaims = []
    // An acknowledged claim whose coupon was lost (lossy recovery only) must not be retried.
    requests = requests.filter { _, value in
      if case .claimed(let code) = value.outcome { return coupons[code] != nil }
      return true
    }
    resolveBooks(observed, lossy: lossy)
  }
}

extension Coupon {
  /// A coupon known only by code and owner (the model compares nothing else).
  init(code: String, campaign: String, user: String?) {
    self.init(
      code: code, campaign: campaign, user: user, state: .assigned, issuedAt: nil, redemptions: 0,
      lockExpiresAt: nil)
  }
}

extension CouponStore {
  /// Everything the store holds, through the public API, with the details (audit trail) of
  /// `codes`, read at `time` (the clock's reading, which does not move while this runs).
  func observe(codes: [String] = [], time: Int64 = 0) async throws(CouponStoreError)
    -> ObservedState
  {
    var state = ObservedState()
    state.time = time
    state.campaigns = try await campaigns()
    for campaign in state.campaigns {
      var claims: [ClaimRecord] = []
      var cursor: ClaimCursor?
      repeat {
        guard let page = try await self.claims(of: campaign.id, after: cursor, limit: 10_000)
        else { break }
        claims += page.claims
        cursor = page.next
      } while cursor != nil
      state.claims[campaign.id] = claims
      for claim in claims {
        state.coupons[claim.code] = CouponFacts(campaign: campaign.id, user: claim.user)
      }
    }
    for code in codes {
      if let details = try await couponDetails(code: code) { state.details[code] = details }
    }
    for user in SimulationWorkload.users {
      state.userCoupons[user] = try await coupons(of: user)
    }
    state.couponStates = try await statistics().couponsByCampaign
    return state
  }
}
